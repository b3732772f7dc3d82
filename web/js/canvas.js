// D3 drawing of servers and links. Positions are the user's (model units: 1 unit = 1 px at zoom 1).
/* global d3 */

import { linkLabel, serverLabel } from "./format.js";

const R = 13; // server radius
const DRAG_THRESHOLD = 3; // px of movement before a press becomes a drag

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
  constructor(svgEl, store, handlers) {
    this.store = store;
    this.handlers = handlers;
    this.selection = null; // {type: "server"|"link", id}
    this.placeholders = new Map(); // tmp id -> {id, x, y, state, kind, name}
    this.drag = null; // {id, x, y, moved}
    this.eventRing = new Map(); // server id -> colour of the last event received
    this.pending = false;

    this.svg = d3.select(svgEl);
    this.bg = this.svg.append("rect").attr("class", "bg").attr("width", "100%").attr("height", "100%");
    this.view = this.svg.append("g").attr("class", "viewport");
    this.gLinks = this.view.append("g").attr("class", "links");
    this.gDots = this.view.append("g").attr("class", "dots");
    this.gServers = this.view.append("g").attr("class", "servers");
    this.gBubbles = this.view.append("g").attr("class", "bubbles");

    this.zoom = d3
      .zoom()
      .scaleExtent([0.2, 4])
      .clickDistance(4)
      .filter((ev) => (!ev.ctrlKey || ev.type === "wheel") && !ev.button && ev.type !== "dblclick")
      .on("zoom", (ev) => this.view.attr("transform", ev.transform));
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

  setEventRing(id, colour) {
    this.eventRing.set(id, colour);
    this.gServers
      .selectAll("g.server")
      .filter((d) => d.id === id)
      .select("circle.event-ring")
      .attr("stroke", colour)
      .interrupt()
      .attr("stroke-opacity", 1);
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
  }

  renderLinks() {
    const links = [...this.store.links.values()];
    const sel = this.selection;
    const maxRate = Math.max(1, ...links.map(peakRate));
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
      .attr("data-key", (d) => d.key)
      .classed("cut", (d) => !!d.cut)
      .classed("pinned", (d) => (d.pinned || []).length > 0)
      .classed("selected", (d) => sel && sel.type === "link" && sel.id === d.key);
    join.select("line.line").attr("stroke-width", (d) => 1.5 + 4 * utilisation(d, maxRate));
    join
      .select("line.glow")
      .attr("stroke-width", (d) => 6 + 10 * utilisation(d, maxRate))
      .attr("stroke-opacity", (d) => 0.45 * utilisation(d, maxRate));
    join.select("text.link-label").text((d) => linkLabel(d));
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
        g.append("circle").attr("class", "event-ring").attr("r", R + 5).attr("stroke-opacity", 0);
        g.append("circle").attr("class", "body").attr("r", R);
        g.append("text").attr("class", "kind-glyph").attr("dy", "0.35em");
        g.append("text").attr("class", "server-label").attr("y", R + 16);
        g.append("title");
        return g;
      });
    join
      .attr("data-id", (d) => d.id)
      .attr("data-state", (d) => d.state)
      .classed("placeholder", (d) => !!d.placeholder)
      .classed("router", (d) => d.kind === "router")
      .classed("selected", (d) => sel && sel.type === "server" && sel.id === d.id);
    join.select("circle.body").attr("stroke", (d) => STATE_COLOURS[d.state] || "#999");
    join.select("text.kind-glyph").text((d) => (d.kind === "router" ? "R" : "S"));
    join.select("text.server-label").text((d) => serverLabel(d));
    join.select("title").text((d) => {
      const parts = [`${d.name || d.id} (${d.kind || "?"})`, `state: ${d.state}`];
      if (d.reason) parts.push(`reason: ${d.reason}`);
      if (d.address) parts.push(d.address);
      return parts.join("\n");
    });
    join.filter((d) => !d.placeholder).call(this.dragBehaviour);
    this.positionServers(join);
  }

  /** Moves circles and link ends without a data join (used while dragging). */
  updatePositions() {
    this.positionServers(this.gServers.selectAll("g.server"));
    this.positionLinks(this.gLinks.selectAll("g.link"));
  }

  positionServers(sel) {
    sel.attr("transform", (d) => {
      const p = this.position(d.id) || d;
      return `translate(${p.x},${p.y})`;
    });
  }

  positionLinks(sel) {
    const ends = (d) => [this.position(d.a), this.position(d.b)];
    sel.each(function (d) {
      const [p, q] = ends(d);
      if (!p || !q) return;
      const g = d3.select(this);
      g.selectAll("line").attr("x1", p.x).attr("y1", p.y).attr("x2", q.x).attr("y2", q.y);
      let angle = (Math.atan2(q.y - p.y, q.x - p.x) * 180) / Math.PI;
      if (angle > 90) angle -= 180;
      if (angle < -90) angle += 180;
      const mx = (p.x + q.x) / 2;
      const my = (p.y + q.y) / 2;
      g.select("text.link-label").attr("transform", `translate(${mx},${my}) rotate(${angle}) translate(0,-5)`);
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
