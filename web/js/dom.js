// Tiny DOM builder. Text always goes through textContent: strings from servers are never parsed as HTML.

/**
 * h("button", {class: "x", onclick: fn}, "label", child, ...)
 * Attributes starting with "on" become listeners; `text` sets textContent; others are attributes.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = String(v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function setText(el, text) {
  if (el.textContent !== String(text)) el.textContent = String(text);
}

/** Copies text to the clipboard, falling back to a hidden textarea (no permission needed). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const ta = h("textarea", { style: "position:fixed;left:-1000px" });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    const ok = document.execCommand("copy");
    ta.remove();
    return ok;
  }
}

/** A short message at the bottom of the canvas. kind: "info" | "error". */
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const t = h("div", { class: `toast ${kind}`, text: message });
  box.append(t);
  setTimeout(() => t.classList.add("leaving"), 3500);
  setTimeout(() => t.remove(), 4000);
  while (box.children.length > 4) box.firstChild.remove();
}
