// Unit tests of the pure modules: node --test web/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { eventColour, formatBps, linkKey, linkLabel, parseBandwidth } from "../js/format.js";
import { Store } from "../js/ws.js";

test("bandwidth formats as bps / kbps / Mbps and parses back", () => {
  assert.equal(formatBps(900), "900 bps");
  assert.equal(formatBps(512000), "512 kbps");
  assert.equal(formatBps(1500000), "1.5 Mbps");
  assert.equal(formatBps(0), "unlimited");
  assert.equal(linkLabel({ latency: 80.4, bandwidth: 512000 }), "80 ms · 512 kbps");
  assert.equal(parseBandwidth("512k"), 512000);
  assert.equal(parseBandwidth("2 Mbps"), 2000000);
  assert.equal(parseBandwidth("1200"), 1200);
  assert.equal(parseBandwidth("lots"), null);
});

test("event colours are stable per id and differ between ids", () => {
  assert.equal(eventColour("$abc"), eventColour("$abc"));
  assert.notEqual(eventColour("$abc"), eventColour("$abd"));
  assert.equal(linkKey(5, 3), "3-5");
});

const server = (id, x, y) => ({ id, x, y, kind: "router", state: "up", name: `router${id}` });
const link = (a, b, latency) => ({ a, b, latency, bandwidth: 512000, jitter: 0, loss: 0, pinned: [], cut: false });

function view(store) {
  return {
    servers: [...store.servers.values()].map((s) => [s.id, s.x, s.y, s.state]).sort(),
    links: [...store.links.keys()].sort(),
    latency: [...store.links.values()].map((l) => l.latency).sort(),
    routes: store.routes,
    defaults: store.defaults,
  };
}

test("deltas applied one by one equal the snapshot of the result", () => {
  const live = new Store();
  live.apply({ type: "snapshot", seq: 0, topology: { servers: [], links: [], defaults: { jitter: 0 }, routes: {} } });
  const deltas = [
    { type: "server_added", server: server(0, 10, 10) },
    { type: "server_added", server: server(1, 100, 10) },
    { type: "server_added", server: server(2, 200, 10) },
    { type: "link_added", link: link(0, 1, 90) },
    { type: "link_added", link: link(1, 2, 100) },
    { type: "routes_changed", changes: { 0: { 1: 1, 2: 1 }, 1: { 0: 0, 2: 2 }, 2: { 1: 1, 0: 1 } } },
    { type: "server_updated", server: server(2, 150, 10) },
    { type: "link_updated", link: link(1, 2, 50) },
    { type: "defaults_changed", defaults: { jitter: 3 } },
    { type: "server_removed", id: 0 },
    { type: "link_removed", a: 0, b: 1 },
    { type: "routes_changed", changes: { 1: { 0: null }, 2: { 0: null } } },
  ];
  for (const d of deltas) live.apply(d);
  const fresh = new Store();
  fresh.apply({
    type: "snapshot",
    seq: 12,
    topology: {
      servers: [server(1, 100, 10), server(2, 150, 10)],
      links: [link(1, 2, 50)],
      defaults: { jitter: 3 },
      routes: { 1: { 2: 2 }, 2: { 1: 1 } },
    },
  });
  assert.deepEqual(view(live), view(fresh));
  assert.equal(live.nextHop(1, 2), 2);
  assert.equal(live.nextHop(1, 0), undefined);
});

test("link_stats turn byte counters into bit/s per direction", () => {
  const st = new Store();
  st.apply({ type: "snapshot", seq: 0, topology: { servers: [server(0, 0, 0), server(1, 9, 0)], links: [link(0, 1, 9)] } });
  const stats = (ab, ba) => ({ ab: { bytes: ab, packets: 0, drops: 0 }, ba: { bytes: ba, packets: 0, drops: 0 } });
  st.applyStats([{ a: 0, b: 1, stats: stats(1000, 0) }], 1000);
  st.applyStats([{ a: 0, b: 1, stats: stats(126000, 500) }], 2000);
  const l = st.linkBetween(0, 1);
  assert.equal(l.rateAb, 1_000_000);
  assert.equal(l.rateBa, 4000);
  // counters given the other way round are swapped
  st.applyStats([{ a: 1, b: 0, stats: stats(500, 126000) }], 3000);
  assert.equal(st.linkBetween(0, 1).rateAb, 0);
});

test("telemetry goes to telemetry listeners, not into the state", () => {
  const st = new Store();
  const seen = [];
  let changes = 0;
  st.onTelemetry((m) => seen.push(m.type));
  st.onState(() => changes++);
  st.apply({ type: "event_sent", event_id: "$e", server: 0, destinations: [1] });
  st.apply({ type: "event_received", event_id: "$e", server: 1 });
  assert.deepEqual(seen, ["event_sent", "event_received"]);
  assert.equal(changes, 0);
});

test("emulator outages are state: links shown down until it is back", () => {
  const st = new Store();
  const kinds = [];
  st.onState((k) => kinds.push(k));
  st.apply({ type: "emulator", state: "down" });
  assert.equal(st.emulatorUp, false);
  st.apply({ type: "emulator", state: "up" });
  assert.equal(st.emulatorUp, true);
  assert.deepEqual(kinds, ["emulator", "emulator"]);
});
