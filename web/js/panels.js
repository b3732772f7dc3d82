// Side panels: the selected server, the selected link, and the global defaults.
// Each panel builds its DOM once and then only refreshes values, so typing is never interrupted.

import { api } from "./api.js";
import { copyText, h, setText, toast } from "./dom.js";
import {
  formatBps,
  formatBytes,
  formatMs,
  formatPct,
  formatRate,
  parseBandwidth,
  parseNumber,
  serverLabel,
} from "./format.js";


const LINK_FIELDS = [
  { name: "bandwidth", label: "Bandwidth", unit: "bit/s", fmt: formatBps, parse: parseBandwidth, hint: "512k, 2M" },
  { name: "latency", label: "Latency", unit: "ms", fmt: formatMs, parse: parseNumber },
  { name: "jitter", label: "Jitter", unit: "ms", fmt: formatMs, parse: parseNumber },
  { name: "loss", label: "Loss", unit: "%", fmt: formatPct, parse: parsePercent },
];

function parsePercent(text) {
  const v = parseNumber(text);
  return v === null || v > 100 ? null : v;
}

function errorLine() {
  return h("div", { class: "error", role: "alert" });
}

function showError(el, err) {
  setText(el, err ? String(err.message || err) : "");
}

/** The panel for the current selection (server, link, or a hint). */
export class SelectionPanel {
  constructor(root, store) {
    this.root = root;
    this.store = store;
    this.current = null;
    this.view = null;
    store.onState(() => this.update());
    this.show(null);
  }

  show(sel) {
    if (this.view && this.view.destroy) this.view.destroy();
    this.current = sel;
    this.root.replaceChildren();
    if (!sel) this.view = new EmptyView(this.root);
    else if (sel.type === "server") this.view = new ServerView(this.root, this.store, sel.id);
    else this.view = new LinkView(this.root, this.store, sel.id);
    this.update();
  }

  update() {
    if (this.view) this.view.update();
  }
}

class EmptyView {
  constructor(root) {
    root.append(
      h("h2", { text: "Nothing selected" }),
      h(
        "ul",
        { class: "help" },
        h("li", { text: "Click empty space to add a server (kind chosen in the toolbar)." }),
        h("li", { text: "Drag a server to move it: distance is latency (1 px = 1 ms at 100 %)." }),
        h("li", { text: "Click a server or a link to inspect it here." }),
        h("li", { text: "Scroll to zoom, drag the background to pan, Esc to deselect." }),
      ),
    );
  }

  update() {}
}

class ServerView {
  constructor(root, store, id) {
    this.store = store;
    this.id = id;
    this.detail = null;
    this.el = {};
    const e = this.el;
    e.title = h("h2");
    e.kind = h("span", { class: "badge" });
    e.state = h("span", { class: "badge state" });
    e.reason = h("div", { class: "reason" });
    e.address = h("dd", { class: "mono" });
    e.url = h("a", { target: "_blank", rel: "noopener noreferrer", class: "mono" });
    e.copyUrl = h("button", { class: "small", title: "Copy client URL", onclick: () => this.copy(e.url.textContent) }, "copy");
    e.pid = h("dd", { class: "mono" });
    e.rss = h("dd", { class: "mono" });
    e.shell = h("code", { class: "mono" });
    e.copyShell = h("button", { class: "small", title: "Copy command", onclick: () => this.copy(e.shell.textContent) }, "copy");
    e.error = errorLine();
    e.logs = h("pre", { class: "logs" });
    e.chatInput = h("input", { type: "text", placeholder: "Message the demo room…", maxlength: "2000" });
    e.chatRow = h(
      "form",
      { class: "row chat", onsubmit: (ev) => this.chat(ev) },
      e.chatInput,
      h("button", { type: "submit" }, "Send"),
    );
    const action = (name, cls = "") => h("button", { class: cls, onclick: () => this.act(name) }, name);
    root.append(
      h("div", { class: "panel-head" }, e.title, e.kind, e.state),
      e.reason,
      h(
        "dl",
        { class: "facts" },
        h("dt", { text: "address" }),
        e.address,
        h("dt", { text: "client URL" }),
        h("dd", {}, e.url, " ", e.copyUrl),
        h("dt", { text: "pid" }),
        e.pid,
        h("dt", { text: "memory" }),
        e.rss,
        h("dt", { text: "shell" }),
        h("dd", {}, e.shell, " ", e.copyShell),
      ),
      h("div", { class: "row buttons" }, action("stop"), action("start"), action("kill", "danger"), action("restart")),
      e.error,
      h("h3", { text: "Chat" }),
      e.chatRow,
      h("div", { class: "row spread" }, h("h3", { text: "Log" }), h("button", { class: "small", onclick: () => this.loadLogs() }, "refresh")),
      e.logs,
    );
    this.refresh();
    this.timer = setInterval(() => this.refresh(), 3000);
  }

  destroy() {
    clearInterval(this.timer);
  }

  async copy(text) {
    if (text && (await copyText(text))) toast(`copied: ${text}`);
  }

  async refresh() {
    try {
      this.detail = await api.server(this.id);
      this.update();
    } catch (err) {
      if (err.status !== 404) showError(this.el.error, err);
    }
    this.loadLogs();
  }

  async loadLogs() {
    const server = this.store.servers.get(this.id);
    if (!server || server.kind === "router") {
      setText(this.el.logs, server ? "(routers have no log)" : "");
      return;
    }
    try {
      const { lines } = await api.logs(this.id, 200);
      const pre = this.el.logs;
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      setText(pre, (lines || []).join("\n") || "(empty)");
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    } catch (err) {
      setText(this.el.logs, `(log unavailable: ${err.detail || err.message})`);
    }
  }

  async act(name) {
    showError(this.el.error, null);
    try {
      const server = await api.serverAction(this.id, name);
      if (server && server.id !== undefined) this.store.upsertServer(server);
      this.store.emit("server_updated", {});
    } catch (err) {
      showError(this.el.error, err);
    }
  }

  async chat(ev) {
    ev.preventDefault();
    const body = this.el.chatInput.value.trim();
    if (!body) return;
    showError(this.el.error, null);
    try {
      await api.chat(this.id, body);
      this.el.chatInput.value = "";
      toast("message sent");
    } catch (err) {
      showError(this.el.error, err);
    }
  }

  update() {
    const s = this.store.servers.get(this.id);
    const e = this.el;
    if (!s) {
      setText(e.title, `server ${this.id}`);
      setText(e.state, "removed");
      e.state.dataset.state = "removed";
      return;
    }
    const d = { ...(this.detail || {}), ...s };
    setText(e.title, d.name || `server ${d.id}`);
    setText(e.kind, d.kind || "?");
    setText(e.state, d.state || "?");
    e.state.dataset.state = d.state || "";
    setText(e.reason, d.reason ? `reason: ${d.reason}` : "");
    setText(e.address, d.address || "—");
    setText(e.url, d.client_url || "");
    if (d.client_url && /^https?:\/\//.test(d.client_url)) e.url.href = d.client_url;
    else e.url.removeAttribute("href");
    e.copyUrl.hidden = !d.client_url;
    if (!d.client_url) setText(e.url, "—");
    const detail = this.detail || {};
    setText(e.pid, detail.pid ?? "—");
    setText(e.rss, detail.rss_bytes ? formatBytes(detail.rss_bytes) : "—");
    setText(e.shell, detail.shell || `meshsim shell ${d.id}`);
    e.chatRow.hidden = d.kind === "router";
  }
}

class LinkView {
  constructor(root, store, key) {
    this.store = store;
    this.key = key;
    [this.a, this.b] = key.split("-").map(Number);
    this.rows = {};
    this.el = {};
    const e = this.el;
    e.title = h("h2");
    e.cut = h("span", { class: "badge cut-badge" });
    e.gone = h("div", { class: "reason" });
    e.rateAb = h("dd", { class: "mono" });
    e.rateBa = h("dd", { class: "mono" });
    e.counters = h("dd", { class: "mono" });
    e.labelAb = h("dt");
    e.labelBa = h("dt");
    e.error = errorLine();
    const table = h("div", { class: "pin-table" });
    for (const f of LINK_FIELDS) table.append(...this.fieldRow(f));
    root.append(
      h("div", { class: "panel-head" }, e.title, e.cut),
      e.gone,
      h("dl", { class: "facts" }, e.labelAb, e.rateAb, e.labelBa, e.rateBa, h("dt", { text: "counters" }), e.counters),
      h("h3", { text: "Parameters", title: "A pinned value overrides the one derived from distance; pins survive moves" }),
      table,
      h(
        "div",
        { class: "row buttons" },
        h("button", { class: "danger", onclick: () => this.call(() => api.cutLink(this.a, this.b)) }, "Cut link"),
        h("button", { onclick: () => this.call(() => api.healLink(this.a, this.b)) }, "Heal link"),
      ),
      e.error,
    );
  }

  fieldRow(f) {
    const value = h("span", { class: "value mono" });
    const pin = h("span", { class: "pin-mark", title: "pinned" });
    const input = h("input", { type: "text", name: f.name, placeholder: f.hint || f.unit, size: "6", "aria-label": `${f.label} (${f.unit})` });
    const doPin = () => {
      const v = f.parse(input.value);
      if (v === null) return showError(this.el.error, `${f.label}: not a valid value in ${f.unit}`);
      this.call(() => api.pinLink(this.a, this.b, { [f.name]: v })).then((ok) => ok && (input.value = ""));
    };
    input.addEventListener("keydown", (ev) => ev.key === "Enter" && doPin());
    this.rows[f.name] = { value, pin, f };
    return [
      h("label", { class: "field-name", title: `${f.label} in ${f.unit}`, text: f.label }),
      h("span", { class: "current" }, value, pin),
      input,
      h("button", { class: "small pin", "data-field": f.name, onclick: doPin }, "pin"),
      h("button", { class: "small unpin", "data-field": f.name, onclick: () => this.call(() => api.unpinLink(this.a, this.b, f.name)) }, "unpin"),
    ];
  }

  /** Runs an API call, applies a returned link, shows the error if any. */
  async call(fn) {
    showError(this.el.error, null);
    try {
      const link = await fn();
      if (link && link.a !== undefined && this.store.linkBetween(link.a, link.b)) {
        this.store.upsertLink(link);
        this.store.emit("link_updated", {});
      }
      return true;
    } catch (err) {
      showError(this.el.error, err);
      return false;
    }
  }

  update() {
    const e = this.el;
    const name = (id) => {
      const s = this.store.servers.get(id);
      return s ? s.name || serverLabel(s) : String(id);
    };
    setText(e.title, `${name(this.a)} ↔ ${name(this.b)}`);
    const link = this.store.linkBetween(this.a, this.b);
    setText(e.gone, link ? "" : "These servers are not linked right now.");
    setText(e.cut, link && link.cut ? "cut" : "");
    e.cut.hidden = !(link && link.cut);
    setText(e.labelAb, `${name(this.a)} → ${name(this.b)}`);
    setText(e.labelBa, `${name(this.b)} → ${name(this.a)}`);
    setText(e.rateAb, link ? formatRate(link.rateAb) : "—");
    setText(e.rateBa, link ? formatRate(link.rateBa) : "—");
    const st = link && link.stats;
    setText(
      e.counters,
      st ? `${formatBytes((st.ab?.bytes || 0) + (st.ba?.bytes || 0))}, ${(st.ab?.packets || 0) + (st.ba?.packets || 0)} pkts, ${(st.ab?.drops || 0) + (st.ba?.drops || 0)} drops` : "—",
    );
    const pinned = new Set((link && link.pinned) || []);
    for (const { value, pin, f } of Object.values(this.rows)) {
      setText(value, link ? f.fmt(link[f.name]) : "—");
      setText(pin, pinned.has(f.name) ? "pinned" : "");
      value.parentElement.classList.toggle("is-pinned", pinned.has(f.name));
    }
  }
}

const DEFAULT_FIELDS = [
  { name: "bandwidth", label: "Bandwidth", unit: "bit/s", type: "bw" },
  { name: "decay", label: "Bandwidth decays with distance", type: "bool" },
  { name: "max_latency", label: "Max link latency", unit: "ms", type: "num" },
  { name: "min_bandwidth", label: "Min bandwidth", unit: "bit/s", type: "bw" },
  { name: "jitter", label: "Jitter", unit: "milliseconds", type: "num" },
  { name: "loss", label: "Packet loss", unit: "%", type: "pct" },
  { name: "cost", label: "Routing cost", type: "select", options: [["latency", "min latency"], ["bandwidth", "max bandwidth"]] },
  { name: "latency_scale", label: "Latency scale", unit: "%", type: "num" },
  { type: "heading", label: "Client link (host ↔ each server's client API)" },
  { name: "client_bandwidth", label: "Bandwidth", unit: "bit/s", type: "bw" },
  { name: "client_latency", label: "Latency", unit: "ms", type: "num" },
  { name: "client_jitter", label: "Jitter", unit: "ms", type: "num" },
  { name: "client_loss", label: "Loss", unit: "%", type: "pct" },
];

/** The global defaults form (SPEC §1) with Apply. */
export class DefaultsPanel {
  constructor(form, store) {
    this.form = form;
    this.store = store;
    this.dirty = false;
    this.inputs = {};
    this.hints = {};
    const grid = h("div", { class: "defaults-grid" });
    for (const f of DEFAULT_FIELDS) grid.append(this.field(f));
    this.error = errorLine();
    this.applyBtn = h("button", { type: "submit", class: "primary" }, "Apply");
    this.revertBtn = h("button", { type: "button", onclick: () => this.fill(true) }, "Revert");
    form.append(grid, h("div", { class: "row buttons" }, this.applyBtn, this.revertBtn), this.error);
    form.addEventListener("input", () => this.markDirty(true));
    form.addEventListener("change", () => this.markDirty(true));
    form.addEventListener("submit", (ev) => this.apply(ev));
    store.onState((kind) => (kind === "snapshot" || kind === "defaults_changed") && this.fill(false));
  }

  field(f) {
    if (f.type === "heading") return h("div", { class: "grid-heading", text: f.label });
    const id = `def-${f.name}`;
    let input;
    if (f.type === "bool") {
      input = h("input", { type: "checkbox", id, name: f.name });
      this.inputs[f.name] = input;
      return h("label", { class: "field check", for: id }, input, h("span", { text: f.label }));
    }
    if (f.type === "select") {
      input = h("select", { id, name: f.name }, f.options.map(([v, t]) => h("option", { value: v, text: t })));
    } else {
      input = h("input", { type: "text", id, name: f.name, inputmode: "decimal", autocomplete: "off" });
    }
    this.inputs[f.name] = input;
    const hint = h("span", { class: "hint" });
    this.hints[f.name] = hint;
    if (f.type === "bw") input.addEventListener("input", () => this.hintBw(f.name));
    return h(
      "label",
      { class: "field", for: id },
      h("span", { class: "field-label" }, f.label, f.unit ? h("span", { class: "unit", text: ` (${f.unit})` }) : null),
      h("span", { class: "input-wrap" }, input, hint),
    );
  }

  hintBw(name) {
    const v = parseBandwidth(this.inputs[name].value);
    setText(this.hints[name], v === null ? "not a bandwidth" : formatBps(v));
  }

  markDirty(dirty) {
    this.dirty = dirty;
    this.form.classList.toggle("dirty", dirty);
  }

  /** Copies the store's defaults into the form unless the user is editing (force overrides). */
  fill(force) {
    if (this.dirty && !force) return;
    const d = this.store.defaults;
    for (const f of DEFAULT_FIELDS) {
      if (!f.name) continue;
      const input = this.inputs[f.name];
      const v = d[f.name];
      if (v === undefined) continue;
      if (f.type === "bool") input.checked = !!v;
      else input.value = String(v);
      if (f.type === "bw") this.hintBw(f.name);
    }
    this.markDirty(false);
    showError(this.error, null);
  }

  read() {
    const out = {};
    const bad = [];
    for (const f of DEFAULT_FIELDS) {
      if (!f.name) continue;
      const input = this.inputs[f.name];
      if (f.type === "bool") out[f.name] = input.checked;
      else if (f.type === "select") out[f.name] = input.value;
      else {
        const v = f.type === "bw" ? parseBandwidth(input.value) : f.type === "pct" ? parsePercent(input.value) : parseNumber(input.value);
        if (v === null) bad.push(f.label);
        else out[f.name] = v;
      }
    }
    return { values: out, bad };
  }

  async apply(ev) {
    ev.preventDefault();
    const { values, bad } = this.read();
    if (bad.length) return showError(this.error, `not a valid value: ${bad.join(", ")}`);
    showError(this.error, null);
    this.applyBtn.disabled = true;
    try {
      const d = await api.setDefaults(values);
      this.store.setDefaults(d || values);
      this.markDirty(false);
      this.fill(true);
      toast("defaults applied");
    } catch (err) {
      showError(this.error, err);
    } finally {
      this.applyBtn.disabled = false;
    }
  }
}
