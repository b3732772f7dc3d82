// D3 drawing of servers and links. Positions are the user's (model units: 1 unit = 1 px at zoom 1).
/* global d3 */

import { linkLabel, serverLabel } from "./format.js";

export const R = 13; // server radius
const DRAG_THRESHOLD = 3;
const DENSE_LINKS = 80; // above this many links (at zoom 1) link labels show on hover only // px of movement before a press becomes a drag

export const STATE_COLOURS = {
  starting: "#f2b544",
  up: "#4cc38a",
  stopped: "#7d8590",
  failed: "#f0524f",
};

/**
 * handlers: onCreate(x, y), onMove(id, x, y) -> Promise, onSelect({type, id} | null)
 */
export class Canvas {
  constructor(svgEl, overlayEl, store, handlers) {
    this.store = store;
    this.handlers = handlers;
    this.selection = null; // {type: "server"|"link", id}
    this.placeholders = new Map(); // tmp id -> {id, x, y, state, kind, name}
    this.drag = null; // {id, x, y, moved}
    this.pending = false;

    this.transform = d3.zoomIdentity;
    this.viewListeners = [];
    this.svg = d3.select(svgEl);
    this.overlay = overlayEl;
    this.bg = this.svg.append("rect").attr("class", "bg").attr("width", "100%").attr("height", "100%");
    this.view = this.svg.append("g").attr("class", "viewport");
    this.gLinks = this.view.append("g").attr("class", "links");
    this.gServers = this.view.append("g").attr("class", "servers");

    this.zoom = d3
      .zoom()
      .scaleExtent([0.2, 4])
      .clickDistance(4)
      .filter((ev) => (!ev.ctrlKey || ev.type === "wheel") && !ev.button && ev.type !== "dblclick")
      .on("zoom", (ev) => {
        this.transform = ev.transform;
        this.view.attr("transform", ev.transform);
        this.schedule(); // label density follows the zoom
        this.viewChanged();
      });
    this.svg.call(this.zoom).on("dblclick.zoom", null);

    this.bg.on("click", (ev) => {
      const [x, y] = d3.pointer(ev, this.view.node());
      this.handlers.onCreate(Math.round(x), Math.round(y));
    });

    this.dragBehaviour = d3
      .drag()
      .container(() => this.view.node())
      .on("start", (ev, d) => {
        this.drag = { id: d.id, x0: ev.x, y0: ev.y, x: d.x, y: d.y, dx: ev.x - d.x, dy: ev.y - d.y, moved: false };
      })
      .on("drag", (ev) => {
        const g = this.drag;
        if (!g) return;
        if (!g.moved && Math.hypot(ev.x - g.x0, ev.y - g.y0) < DRAG_THRESHOLD) return;
        g.moved = true;
        g.x = ev.x - g.dx;
        g.y = ev.y - g.dy;
        this.updatePositions();
      })
      .on("end", (ev, d) => {
        const g = this.drag;
        if (!g) return;
        if (!g.moved) {
          this.drag = null;
          this.handlers.onSelect({ type: "server", id: d.id });
          return;
        }
        const x = Math.round(g.x);
        const y = Math.round(g.y);
        g.x = x;
        g.y = y;
        Promise.resolve(this.handlers.onMove(d.id, x, y)).finally(() => {
          if (this.drag === g) this.drag = null;
          this.schedule();
        });
      });
  }

  /** fn() after every zoom, pan, move or render (the event overlay redraws). */
  onView(fn) {
    this.viewListeners.push(fn);
  }

  /** Position of a server as drawn now (the drag position while dragging). */
  position(id) {
    if (this.drag && this.drag.id === id) return this.drag;
    return this.store.servers.get(id) || this.placeholders.get(id);
  }

  select(sel) {
    this.selection = sel;
    this.schedule();
  }

  addPlaceholder(x, y, kind) {
    const id = `tmp-${Math.random().toString(36).slice(2, 8)}`;
    this.placeholders.set(id, { id, x, y, kind, state: "starting", name: "starting…", placeholder: true });
    this.schedule();
    return id;
  }

  removePlaceholder(id) {
    this.placeholders.delete(id);
    this.schedule();
  }

  /** Coalesces renders into one per animation frame. */
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  /** Fits the view to all servers. */
  fit() {
    const pts = [...this.store.servers.values()];
    const box = this.svg.node().getBoundingClientRect();
    if (!pts.length) {
      this.svg.transition().call(this.zoom.transform, d3.zoomIdentity);
      return;
    }
    const [x0, x1] = d3.extent(pts, (d) => d.x);
    const [y0, y1] = d3.extent(pts, (d) => d.y);
    const pad = 60;
    const k = Math.min(4, (box.width - 2 * pad) / (x1 - x0 || 1), (box.height - 2 * pad) / (y1 - y0 || 1));
    const t = d3.zoomIdentity
      .translate(box.width / 2, box.height / 2)
      .scale(Math.min(k, 1.5))
      .translate(-(x0 + x1) / 2, -(y0 + y1) / 2);
    this.svg.transition().duration(400).call(this.zoom.transform, t);
  }

  render() {
    this.renderLinks();
    this.renderServers();
    this.viewChanged();
  }

  viewChanged() {
    for (const fn of this.viewListeners) fn();
  }

  renderLinks() {
    const links = [...this.store.links.values()];
    const sel = this.selection;
    const maxRate = Math.max(1, ...links.map(peakRate));
    // many links: labels only on hover / selection, or once zoomed in
    this.svg.classed("dense", links.length * Math.min(1, 1 / this.transform.k ** 2) > DENSE_LINKS);
    const join = this.gLinks
      .selectAll("g.link")
      .data(links, (d) => d.key)
      .join((enter) => {
        const g = enter.append("g").attr("class", "link");
        g.append("line").attr("class", "glow");
        g.append("line").attr("class", "line");
        g.append("line").attr("class", "hit");
        g.append("text").attr("class", "link-label");
        g.on("click", (ev, d) => {
          ev.stopPropagation();
          this.handlers.onSelect({ type: "link", id: d.key });
        });
        return g;
      });
    join
      .classed("cut", (d) => !!d.cut)
      .classed("pinned", (d) => (d.pinned || []).length > 0)
      .classed("selected", (d) => sel && sel.type === "link" && sel.id === d.key);
    join.each(function (d) {
      const u = Math.round(utilisation(d, maxRate) * 10) / 10; // steps: small changes repaint nothing
      const [glow, line, , label] = this.children;
      setAttr(this, "data-key", d.key);
      setAttr(line, "stroke-width", 1.5 + 4 * u);
      setAttr(glow, "stroke-width", 6 + 10 * u);
      setAttr(glow, "stroke-opacity", 0.45 * u);
      setText(label, linkLabel(d));
    });
    this.positionLinks(join);
  }

  renderServers() {
    const servers = [...this.store.servers.values(), ...this.placeholders.values()];
    const sel = this.selection;
    const join = this.gServers
      .selectAll("g.server")
      .data(servers, (d) => d.id)
      .join((enter) => {
        const g = enter.append("g").attr("class", "server");
        g.append("circle").attr("class", "halo").attr("r", R + 9);
        g.append("circle").attr("class", "body").attr("r", R);
        g.append("text").attr("class", "kind-glyph").attr("dy", "0.35em");
        g.append("text").attr("class", "server-label").attr("y", R + 16);
        g.append("title");
        return g;
      });
    join
      .classed("placeholder", (d) => !!d.placeholder)
      .classed("router", (d) => d.kind === "router")
      .classed("selected", (d) => sel && sel.type === "server" && sel.id === d.id);
    join.each(function (d) {
      const [, body, glyph, label, title] = this.children;
      setAttr(this, "data-id", d.id);
      setAttr(this, "data-state", d.state);
      setAttr(body, "stroke", STATE_COLOURS[d.state] || "#999");
      setText(glyph, d.kind === "router" ? "R" : "S");
      setText(label, serverLabel(d));
      const parts = [`${d.name || d.id} (${d.kind || "?"})`, `state: ${d.state}`];
      if (d.reason) parts.push(`reason: ${d.reason}`);
      if (d.address) parts.push(d.address);
      setText(title, parts.join("\n"));
    });
    join.filter((d) => !d.placeholder).call(this.dragBehaviour);
    this.positionServers(join);
  }

  /** Moves circles and link ends without a data join (used while dragging). */
  updatePositions() {
    this.positionServers(this.gServers.selectAll("g.server"));
    this.positionLinks(this.gLinks.selectAll("g.link"));
    this.viewChanged();
  }

  positionServers(sel) {
    const pos = (id) => this.position(id);
    sel.each(function (d) {
      const p = pos(d.id) || d;
      setAttr(this, "transform", `translate(${p.x},${p.y})`);
    });
  }

  positionLinks(sel) {
    const ends = (d) => [this.position(d.a), this.position(d.b)];
    sel.each(function (d) {
      const [p, q] = ends(d);
      if (!p || !q) return;
      const [glow, line, hit, label] = this.children;
      for (const el of [glow, line, hit]) {
        setAttr(el, "x1", p.x);
        setAttr(el, "y1", p.y);
        setAttr(el, "x2", q.x);
        setAttr(el, "y2", q.y);
      }
      let angle = (Math.atan2(q.y - p.y, q.x - p.x) * 180) / Math.PI;
      if (angle > 90) angle -= 180;
      if (angle < -90) angle += 180;
      const mx = (p.x + q.x) / 2;
      const my = (p.y + q.y) / 2;
      setAttr(label, "transform", `translate(${mx},${my}) rotate(${angle.toFixed(1)}) translate(0,-5)`);
    });
  }
}

/** 0..1: share of the link's bandwidth in use, or of the busiest link when unlimited. */
function utilisation(link, maxRate) {
  const rate = peakRate(link);
  if (rate <= 0) return 0;
  const cap = link.bandwidth > 0 ? link.bandwidth : maxRate;
  return Math.min(1, Math.sqrt(rate / cap));
}

/** The busier direction's bit/s (bandwidth is per direction). */
function peakRate(link) {
  return Math.max(link.rateAb || 0, link.rateBa || 0);
}

/** Sets an attribute only when it changes (an unchanged SVG repaints nothing). */
function setAttr(el, name, value) {
  const v = String(value);
  if (el.getAttribute(name) !== v) el.setAttribute(name, v);
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}
