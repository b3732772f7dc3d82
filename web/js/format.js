// Pure formatting and parsing helpers (no DOM).

/** "512 kbps", "1.5 Mbps", "900 bps"; 0 or missing means unlimited. */
export function formatBps(bps) {
  if (bps === null || bps === undefined) return "?";
  if (bps <= 0) return "unlimited";
  if (bps >= 1e9) return `${trim(bps / 1e9)} Gbps`;
  if (bps >= 1e6) return `${trim(bps / 1e6)} Mbps`;
  if (bps >= 1e3) return `${trim(bps / 1e3)} kbps`;
  return `${Math.round(bps)} bps`;
}

/** Throughput in bit/s, "0" shown as "idle". */
export function formatRate(bitsPerSecond) {
  if (!bitsPerSecond || bitsPerSecond < 1) return "idle";
  return formatBps(bitsPerSecond);
}

export function formatMs(ms) {
  if (ms === null || ms === undefined) return "?";
  return `${trim(ms)} ms`;
}

export function formatPct(pct) {
  if (pct === null || pct === undefined) return "?";
  return `${trim(pct)} %`;
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "?";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${trim(n)} ${units[i]}`;
}

/** "80 ms · 512 kbps", the label drawn on a link. */
export function linkLabel(link) {
  return `${Math.round(link.latency)} ms · ${formatBps(link.bandwidth)}`;
}

/** Parses "512000", "512k", "1.5M", "2 Mbps" into bit/s; null when not a number. */
export function parseBandwidth(text) {
  const m = String(text).trim().match(/^([0-9]*\.?[0-9]+)\s*([kKmMgG]?)(bps|bit\/s|b)?$/);
  if (!m) return null;
  const mult = { "": 1, k: 1e3, m: 1e6, g: 1e9 }[m[2].toLowerCase()];
  return Math.round(parseFloat(m[1]) * mult);
}

/** Parses a plain non-negative number; null when not one. */
export function parseNumber(text) {
  const s = String(text).trim();
  if (s === "" || !/^[0-9]*\.?[0-9]+$/.test(s)) return null;
  return parseFloat(s);
}

/** Undirected link key "a-b" with a < b. */
export function linkKey(a, b) {
  a = Number(a);
  b = Number(b);
  return a < b ? `${a}-${b}` : `${b}-${a}`;
}

/** A stable, bright colour for an event id (FNV-1a hash to hue). */
export function eventColour(eventId) {
  let h = 0x811c9dc5;
  const s = String(eventId);
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  const hue = (h >>> 0) % 360;
  return `hsl(${hue}, 85%, 62%)`;
}

/** Display name of a server: its name, or its id for routers. */
export function serverLabel(server) {
  if (server.kind === "router" || !server.name) return String(server.id);
  return server.name;
}

function trim(x) {
  if (Number.isInteger(x)) return String(x);
  const abs = Math.abs(x);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return String(parseFloat(x.toFixed(digits)));
}
