// Wires the store, the socket, the canvas, the animations and the panels together.

import { api } from "./api.js";
import { Canvas } from "./canvas.js";
import { toast } from "./dom.js";
import { Animator } from "./events.js";
import { DefaultsPanel, SelectionPanel } from "./panels.js";
import { Connection, Store } from "./ws.js";

const $ = (id) => document.getElementById(id);

const store = new Store();
let selection = null;

const canvas = new Canvas($("canvas"), $("overlay"), store, {
  onCreate: createServer,
  onMove: moveServer,
  onSelect: select,
});
const animator = new Animator(store, canvas);
const panel = new SelectionPanel($("selection"), store);
new DefaultsPanel($("defaults-form"), store);
const conn = new Connection(store);

store.onState((kind, msg) => {
  if (kind === "emulator") {
    // The link emulator died: every link is down until the controller has restarted it.
    $("canvas").classList.toggle("links-down", msg.state === "down");
    toast(msg.state === "down" ? "link emulator down: restarting it" : "link emulator back: links up", msg.state === "down" ? "error" : "info");
  }
  canvas.schedule();
  refreshToolbar();
});

function select(sel) {
  selection = sel;
  canvas.select(sel);
  panel.show(sel);
  refreshToolbar();
}

async function createServer(x, y) {
  const kind = $("new-kind").value;
  const tmp = canvas.addPlaceholder(x, y, kind);
  refreshToolbar();
  try {
    const server = await api.addServer(x, y, kind);
    if (server && server.id !== undefined && !store.servers.has(server.id)) {
      store.upsertServer(server);
      store.emit("server_added", { server });
    }
    canvas.removePlaceholder(tmp);
    refreshToolbar();
  } catch (err) {
    const p = canvas.placeholders.get(tmp);
    if (p) Object.assign(p, { state: "failed", reason: err.detail || err.message, name: "failed" });
    canvas.schedule();
    toast(`could not add a server: ${err.detail || err.message}`, "error");
    setTimeout(() => canvas.removePlaceholder(tmp), 4000);
  }
}

async function moveServer(id, x, y) {
  try {
    const server = await api.moveServer(id, x, y);
    if (server && server.id !== undefined) store.upsertServer(server);
  } catch (err) {
    toast(`move failed: ${err.detail || err.message}`, "error");
  }
}

async function removeSelected() {
  if (!selection || selection.type !== "server") return;
  const id = selection.id;
  try {
    await api.removeServer(id);
    store.removeServer(id);
    store.emit("server_removed", { id });
    select(null);
  } catch (err) {
    toast(`remove failed: ${err.detail || err.message}`, "error");
  }
}

async function reset() {
  if (!window.confirm("Remove every server and link?")) return;
  try {
    await api.reset();
    select(null);
    toast("reset");
  } catch (err) {
    toast(`reset failed: ${err.detail || err.message}`, "error");
  }
}

async function save() {
  try {
    const text = await api.topologyFile();
    const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `meshsim-topology-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-")}.json`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (err) {
    toast(`save failed: ${err.detail || err.message}`, "error");
  }
}

async function load(file) {
  if (!file) return;
  try {
    await api.loadTopologyFile(await file.text());
    select(null);
    toast(`loaded ${file.name}`);
  } catch (err) {
    toast(`load failed: ${err.detail || err.message}`, "error");
  }
}

function refreshToolbar() {
  $("empty-hint").hidden = store.servers.size > 0 || canvas.placeholders.size > 0;
  $("btn-remove").disabled = !(selection && selection.type === "server" && store.servers.has(selection.id));
}

function refreshStats() {
  const dropped = animator.dropped ? ` · ${animator.dropped} dropped` : "";
  $("stats").textContent = `${store.servers.size} servers · ${store.links.size} links · ${animator.inFlight} in flight${dropped}`;
}

$("btn-remove").addEventListener("click", removeSelected);
$("btn-reset").addEventListener("click", reset);
$("btn-save").addEventListener("click", save);
$("btn-load").addEventListener("click", () => $("file-load").click());
$("file-load").addEventListener("change", (ev) => {
  load(ev.target.files[0]);
  ev.target.value = "";
});
$("btn-fit").addEventListener("click", () => canvas.fit());
$("anim-toggle").addEventListener("change", (ev) => animator.setEnabled(ev.target.checked));
document.addEventListener("keydown", (ev) => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName);
  if (ev.key === "Escape") select(null);
  if (!typing && (ev.key === "Delete" || ev.key === "Backspace")) removeSelected();
});

conn.onStatus((status, detail) => {
  const el = $("conn");
  el.dataset.status = status;
  el.querySelector(".conn-text").textContent = status;
  el.title = detail || status;
});
setInterval(refreshStats, 500);
refreshToolbar();
conn.start();

// Debug and benchmark hook: `inject` applies a message as if it came from the socket (no seq check).
window.meshsim = { store, canvas, animator, conn, select, inject: (msg) => store.apply(msg) };
