// REST client for docs/api.md. Every call resolves to the parsed JSON body or throws ApiError.

export class ApiError extends Error {
  constructor(status, detail) {
    super(status ? `${status}: ${detail}` : detail);
    this.status = status;
    this.detail = detail;
  }
}

/** API token from ?token= (kept for the tab's session), needed when the controller binds beyond loopback. */
export const token = (() => {
  if (typeof location === "undefined") return ""; // loaded outside a page (node unit tests)
  const given = new URLSearchParams(location.search).get("token");
  if (given) sessionStorage.setItem("meshsim-token", given);
  return given || sessionStorage.getItem("meshsim-token") || "";
})();

function authHeaders() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function request(method, path, body, contentType = "application/json") {
  const init = { method, headers: authHeaders() };
  if (body !== undefined) {
    init.headers["Content-Type"] = contentType;
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, `network error: ${err.message}`);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!resp.ok) throw new ApiError(resp.status, detailOf(data) || resp.statusText);
  return data;
}

/** FastAPI errors: {"detail": "msg"} or {"detail": [{"loc": [...], "msg": ...}]} (422). */
function detailOf(data) {
  if (!data) return "";
  if (typeof data === "string") return data.trimStart().startsWith("<") ? "" : data.slice(0, 300);
  const d = data.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) {
    return d.map((e) => `${(e.loc || []).filter((x) => x !== "body").join(".")}: ${e.msg}`).join("; ");
  }
  return JSON.stringify(data);
}

const enc = encodeURIComponent;

export const api = {
  topology: () => request("GET", "/api/topology"),
  addServer: (x, y, kind) => request("POST", "/api/servers", { x, y, kind }),
  server: (id) => request("GET", `/api/servers/${enc(id)}`),
  moveServer: (id, x, y) => request("PUT", `/api/servers/${enc(id)}`, { x, y }),
  removeServer: (id) => request("DELETE", `/api/servers/${enc(id)}`),
  serverAction: (id, action) => request("POST", `/api/servers/${enc(id)}/${action}`),
  logs: (id, lines = 200) => request("GET", `/api/servers/${enc(id)}/logs?lines=${lines}`),
  link: (a, b) => request("GET", `/api/links/${enc(a)}/${enc(b)}`),
  pinLink: (a, b, fields) => request("PUT", `/api/links/${enc(a)}/${enc(b)}`, fields),
  unpinLink: (a, b, field) => request("DELETE", `/api/links/${enc(a)}/${enc(b)}/${enc(field)}`),
  cutLink: (a, b) => request("POST", `/api/links/${enc(a)}/${enc(b)}/cut`),
  healLink: (a, b) => request("POST", `/api/links/${enc(a)}/${enc(b)}/heal`),
  defaults: () => request("GET", "/api/defaults"),
  setDefaults: (values) => request("PUT", "/api/defaults", values),
  reset: () => request("POST", "/api/reset"),
  chat: (server, body) => request("POST", "/api/chat", { server, body }),

  /** The topology file as text (for a download). */
  async topologyFile() {
    const resp = await fetch("/api/topology/file", { headers: authHeaders() });
    const text = await resp.text();
    if (!resp.ok) throw new ApiError(resp.status, text);
    return text;
  },

  /** Loads a topology file (JSON, or YAML when it does not parse as JSON). */
  loadTopologyFile(text) {
    let type = "application/json";
    try {
      JSON.parse(text);
    } catch {
      type = "application/yaml";
    }
    return request("PUT", "/api/topology/file", text, type);
  },
};
