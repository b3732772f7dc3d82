// The state store and the websocket that feeds it.
// The snapshot and every delta go through the same small functions (pinecone style), so the page
// state after a snapshot equals the state after the same changes applied one by one.

import { token } from "./api.js";
import { linkKey } from "./format.js";

export class Store {
  constructor() {
    this.servers = new Map(); // id -> server
    this.links = new Map(); // "a-b" -> link (+ rate fields)
    this.defaults = {};
    this.routes = {}; // {src: {dst: nexthop}} with string keys
    this.listeners = { state: [], telemetry: [] };
  }

  /** fn(kind, payload) after every state change; kind is the message type. */
  onState(fn) {
    this.listeners.state.push(fn);
  }

  /** fn(msg) for event_sent / event_received / event_delivered. */
  onTelemetry(fn) {
    this.listeners.telemetry.push(fn);
  }

  emit(kind, payload) {
    for (const fn of this.listeners.state) fn(kind, payload);
  }

  clear() {
    this.servers.clear();
    this.links.clear();
    this.defaults = {};
    this.routes = {};
  }

  upsertServer(server) {
    const prev = this.servers.get(server.id);
    this.servers.set(server.id, { ...prev, ...server });
  }

  removeServer(id) {
    this.servers.delete(id);
    for (const [key, link] of this.links) {
      if (link.a === id || link.b === id) this.links.delete(key);
    }
    delete this.routes[String(id)];
  }

  upsertLink(link) {
    const key = linkKey(link.a, link.b);
    const prev = this.links.get(key);
    const next = { rate: 0, rateAb: 0, rateBa: 0, ...prev, ...link, key };
    if (!prev) next.statsAt = performance.now();
    this.links.set(key, next);
  }

  removeLink(a, b) {
    this.links.delete(linkKey(a, b));
  }

  setDefaults(defaults) {
    this.defaults = { ...this.defaults, ...defaults };
  }

  changeRoutes(changes) {
    for (const [src, table] of Object.entries(changes || {})) {
      const row = this.routes[src] || (this.routes[src] = {});
      for (const [dst, hop] of Object.entries(table || {})) {
        if (hop === null || hop === undefined) delete row[dst];
        else row[dst] = hop;
      }
    }
  }

  /** Updates counters and derives bit/s from the previous sample of each link. */
  applyStats(entries, now = performance.now()) {
    for (const { a, b, stats } of entries || []) {
      const link = this.links.get(linkKey(a, b));
      if (!link || !stats) continue;
      const flip = link.a !== a; // stats given for (b, a): swap directions
      const ab = (flip ? stats.ba : stats.ab) || {};
      const ba = (flip ? stats.ab : stats.ba) || {};
      const prev = link.stats;
      const dt = (now - (link.statsAt || now)) / 1000;
      if (prev && dt > 0.05) {
        link.rateAb = rateOf(prev.ab, ab, dt);
        link.rateBa = rateOf(prev.ba, ba, dt);
        link.rate = link.rateAb + link.rateBa;
      }
      link.stats = { ab, ba };
      link.statsAt = now;
    }
  }

  /** Applies one websocket message (snapshot or delta). */
  apply(msg) {
    switch (msg.type) {
      case "snapshot": {
        const topo = msg.topology || {};
        this.clear();
        this.emulatorUp = true;
        for (const s of topo.servers || []) this.upsertServer(s);
        for (const l of topo.links || []) this.upsertLink(l);
        this.setDefaults(topo.defaults || {});
        this.changeRoutes(msg.routes || topo.routes || {});
        break;
      }
      case "server_added":
      case "server_updated":
        this.upsertServer(msg.server);
        break;
      case "server_removed":
        this.removeServer(msg.id);
        break;
      case "link_added":
      case "link_updated":
        this.upsertLink(msg.link);
        break;
      case "link_removed":
        this.removeLink(msg.a, msg.b);
        break;
      case "routes_changed":
        this.changeRoutes(msg.changes);
        break;
      case "defaults_changed":
        this.setDefaults(msg.defaults);
        break;
      case "link_stats":
        this.applyStats(msg.links);
        break;
      case "emulator":
        this.emulatorUp = msg.state !== "down";
        break;
      case "event_sent":
      case "event_received":
      case "event_delivered":
        for (const fn of this.listeners.telemetry) fn(msg);
        return;
      default:
        return; // unknown types are ignored: newer controllers may send more
    }
    this.emit(msg.type, msg);
  }

  /** Next hop from src towards dst, or undefined when unreachable. */
  nextHop(src, dst) {
    const row = this.routes[String(src)];
    return row ? row[String(dst)] : undefined;
  }

  linkBetween(a, b) {
    return this.links.get(linkKey(a, b));
  }
}

function rateOf(prev, cur, dt) {
  const d = (cur.bytes || 0) - ((prev && prev.bytes) || 0);
  return d > 0 ? (d * 8) / dt : 0; // bit/s
}

/**
 * Keeps one websocket open, checks seq continuity and reconnects with backoff on a gap or close;
 * every (re)connect starts from a fresh snapshot.
 */
export class Connection {
  constructor(store, url = defaultUrl()) {
    this.store = store;
    this.url = url;
    this.ws = null;
    this.seq = null;
    this.backoff = 250;
    this.status = "connecting";
    this.statusListeners = [];
    this.reconnects = 0;
    this.timer = null;
  }

  onStatus(fn) {
    this.statusListeners.push(fn);
    fn(this.status, "");
  }

  setStatus(status, detail = "") {
    this.status = status;
    for (const fn of this.statusListeners) fn(status, detail);
  }

  start() {
    clearTimeout(this.timer);
    this.seq = null;
    this.setStatus("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onmessage = (ev) => this.handle(ws, ev.data);
    ws.onclose = (ev) => {
      if (this.ws === ws) this.retry(`closed (${ev.code})`);
    };
    ws.onerror = () => {}; // onclose follows
  }

  handle(ws, data) {
    if (this.ws !== ws) return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return this.restart("bad message");
    }
    if (msg.type === "snapshot") {
      this.seq = msg.seq;
      this.backoff = 250;
      this.store.apply(msg);
      this.setStatus("live");
      return;
    }
    if (this.seq === null) return; // deltas before the snapshot cannot be placed
    if (typeof msg.seq === "number") {
      if (msg.seq !== this.seq + 1) return this.restart(`gap: seq ${msg.seq} after ${this.seq}`);
      this.seq = msg.seq;
    }
    this.store.apply(msg);
  }

  /** Drops the socket and opens a new one (after a gap). */
  restart(reason) {
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
    this.retry(reason);
  }

  retry(reason) {
    this.ws = null;
    this.reconnects += 1;
    this.setStatus("offline", reason);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, 8000);
  }
}

function defaultUrl() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  return `${proto}//${location.host}/api/ws${query}`;
}
