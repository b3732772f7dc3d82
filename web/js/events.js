// Event animations: a dot per destination travels the routed path hop by hop in real time
// (each hop takes that link's latency); a bubble pops where the event is received.
// Dots and bubbles are drawn on a <canvas> over the SVG, so moving them never repaints the SVG.

import { R } from "./canvas.js";
import { eventColour } from "./format.js";

const DOT_R = 5;
export const MAX_DOTS = 500;
const MAX_BUBBLES = 150;
const DOT_TIMEOUT_MS = 10000;
const FADE_MS = 600;
const BUBBLE_MS = 700;
const MIN_HOP_MS = 16;
const FALLBACK_HOP_MS = 50;

export class Animator {
  constructor(store, canvas) {
    this.store = store;
    this.canvas = canvas;
    this.enabled = true;
    this.dots = new Set();
    this.byEvent = new Map(); // event id -> Set of dots
    this.bubbles = new Set();
    this.rings = new Map(); // server id -> colour of the last event it received
    this.dropped = 0;
    this.unroutable = 0;
    this.totalDots = 0;
    this.totalBubbles = 0;
    this.running = false;
    this.names = null; // name -> id cache, rebuilt after state changes
    this.overlay = canvas.overlay;
    this.ctx = this.overlay.getContext("2d");
    canvas.onView(() => this.kick(true));
    store.onState(() => (this.names = null));
    store.onTelemetry((msg) => this.handle(msg));
  }

  setEnabled(on) {
    this.enabled = on;
    if (!on) {
      for (const dot of [...this.dots]) this.removeDot(dot);
      for (const b of [...this.bubbles]) this.removeBubble(b);
      this.kick(true);
    }
  }

  get inFlight() {
    return this.dots.size;
  }

  handle(msg) {
    if (msg.type === "event_sent") this.sent(msg);
    else if (msg.type === "event_received") this.received(msg);
  }

  /** A server id from a number, a numeric string or a server name ("synapse3", "synapse3:8448"). */
  resolve(ref) {
    if (ref === null || ref === undefined) return undefined;
    if (typeof ref === "number") return this.store.servers.has(ref) ? ref : undefined;
    const s = String(ref);
    if (/^\d+$/.test(s)) return this.resolve(Number(s));
    if (!this.names) {
      this.names = new Map();
      for (const srv of this.store.servers.values()) if (srv.name) this.names.set(srv.name, srv.id);
    }
    return this.names.get(s) ?? this.names.get(s.split(":")[0]);
  }

  /** [src, hop, ..., dst] following routes[cur][dst], or null when unreachable. */
  path(src, dst) {
    const path = [src];
    let cur = src;
    const limit = this.store.servers.size + 1;
    while (cur !== dst) {
      const hop = this.store.nextHop(cur, dst);
      if (hop === undefined || path.length > limit) return null;
      cur = Number(hop);
      path.push(cur);
    }
    return path;
  }

  hopMs(a, b) {
    const link = this.store.linkBetween(a, b);
    const ms = link ? link.latency : FALLBACK_HOP_MS;
    return Math.max(MIN_HOP_MS, ms || 0);
  }

  sent(msg) {
    if (!this.enabled) return;
    const src = this.resolve(msg.server) ?? this.resolve(msg.origin);
    if (src === undefined) return;
    const colour = eventColour(msg.event_id);
    const now = performance.now();
    for (const ref of msg.destinations || []) {
      const dst = this.resolve(ref);
      if (dst === undefined || dst === src) continue;
      if (this.dots.size >= MAX_DOTS) {
        this.dropped += 1;
        continue;
      }
      const path = this.path(src, dst);
      if (!path) {
        this.unroutable += 1;
        continue;
      }
      this.addDot({ eventId: msg.event_id, colour, path, dst, hop: 0, hopStart: now, born: now });
    }
    this.kick();
  }

  received(msg) {
    const at = this.resolve(msg.server);
    if (at === undefined) return;
    const colour = eventColour(msg.event_id);
    this.rings.set(at, colour);
    if (!this.enabled) return this.kick(true);
    const dots = this.byEvent.get(msg.event_id);
    if (dots) {
      for (const dot of [...dots]) if (dot.dst === at) this.removeDot(dot);
    }
    this.addBubble(at, colour);
    this.kick();
  }

  addDot(dot) {
    dot.hopMs = this.hopMs(dot.path[0], dot.path[1]);
    dot.opacity = 1;
    this.dots.add(dot);
    this.totalDots += 1;
    let set = this.byEvent.get(dot.eventId);
    if (!set) this.byEvent.set(dot.eventId, (set = new Set()));
    set.add(dot);
  }

  removeDot(dot) {
    if (!this.dots.delete(dot)) return;
    const set = this.byEvent.get(dot.eventId);
    if (set) {
      set.delete(dot);
      if (!set.size) this.byEvent.delete(dot.eventId);
    }
  }

  addBubble(id, colour) {
    if (this.bubbles.size >= MAX_BUBBLES) return;
    if (!this.canvas.position(id)) return;
    this.bubbles.add({ id, colour, born: performance.now() });
    this.totalBubbles += 1;
  }

  removeBubble(b) {
    this.bubbles.delete(b);
  }

  /** Starts the frame loop; `once` draws a frame even when nothing moves (after a zoom or a clear). */
  kick(once = false) {
    if (this.running || (!once && !this.dots.size && !this.bubbles.size)) return;
    this.running = true;
    requestAnimationFrame(() => this.frame());
  }

  frame() {
    const now = performance.now();
    const ctx = this.beginDraw();
    for (const dot of this.dots) this.place(dot, now);
    for (const b of this.bubbles) this.grow(b, now);
    this.drawRings(ctx);
    this.drawBubbles(ctx);
    this.drawDots(ctx);
    if (this.dots.size || this.bubbles.size) requestAnimationFrame(() => this.frame());
    else this.running = false;
  }

  /** Sizes the overlay to its box and applies the canvas's zoom transform. */
  beginDraw() {
    const el = this.overlay;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(el.clientWidth * dpr);
    const h = Math.round(el.clientHeight * dpr);
    if (el.width !== w || el.height !== h) {
      el.width = w;
      el.height = h;
    }
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const t = this.canvas.transform;
    ctx.setTransform(dpr * t.k, 0, 0, dpr * t.k, dpr * t.x, dpr * t.y);
    return ctx;
  }

  drawRings(ctx) {
    ctx.lineWidth = 3;
    for (const [id, colour] of this.rings) {
      const p = this.canvas.position(id);
      if (!p) {
        if (!this.store.servers.has(id)) this.rings.delete(id);
        continue;
      }
      ctx.strokeStyle = colour;
      ctx.beginPath();
      ctx.arc(p.x, p.y, R + 5, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  drawDots(ctx) {
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#0b1015";
    for (const dot of this.dots) {
      ctx.globalAlpha = dot.opacity * (dot.arrived ? 0.55 : 1);
      ctx.fillStyle = dot.colour;
      ctx.beginPath();
      ctx.arc(dot.x, dot.y, DOT_R, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
  }

  drawBubbles(ctx) {
    ctx.lineWidth = 2;
    for (const b of this.bubbles) {
      ctx.beginPath();
      ctx.arc(b.x, b.y, b.r, 0, 2 * Math.PI);
      ctx.strokeStyle = b.colour;
      ctx.fillStyle = b.colour;
      ctx.globalAlpha = b.opacity * 0.18;
      ctx.fill();
      ctx.globalAlpha = b.opacity;
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
  }

  /** Advances a dot along its path and computes where it is drawn. */
  place(dot, now) {
    const last = dot.path.length - 1;
    while (dot.hop < last && now - dot.hopStart >= dot.hopMs) {
      dot.hopStart += dot.hopMs;
      dot.hop += 1;
      if (dot.hop < last) dot.hopMs = this.hopMs(dot.path[dot.hop], dot.path[dot.hop + 1]);
    }
    const age = now - dot.born;
    if (age > DOT_TIMEOUT_MS) {
      const fade = 1 - (age - DOT_TIMEOUT_MS) / FADE_MS;
      if (fade <= 0) return this.removeDot(dot);
      dot.opacity = fade;
    }
    const p = this.canvas.position(dot.path[dot.hop]);
    if (!p) return this.removeDot(dot);
    let x = p.x;
    let y = p.y;
    if (dot.hop < last) {
      const q = this.canvas.position(dot.path[dot.hop + 1]);
      if (!q) return this.removeDot(dot);
      const f = Math.min(1, (now - dot.hopStart) / dot.hopMs);
      x += (q.x - p.x) * f;
      y += (q.y - p.y) * f;
    } else {
      dot.arrived = true;
    }
    dot.x = x;
    dot.y = y;
  }

  grow(b, now) {
    const f = (now - b.born) / BUBBLE_MS;
    const p = this.canvas.position(b.id);
    if (f >= 1 || !p) return this.removeBubble(b);
    b.x = p.x;
    b.y = p.y;
    b.r = 14 + 30 * f;
    b.opacity = 0.9 * (1 - f);
  }
}
