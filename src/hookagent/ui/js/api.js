// The one module that talks to the server. Every page reads and acts through it; the
// session cookie rides along on every request, so nothing here handles a token but signIn.
//
// AUTH SEAM — sign-in (see session.js for the dialog):
//   * signIn(token) POSTs /ui/session; the server answers with an HttpOnly,
//     SameSite=Strict session cookie. Every request below sends same-origin cookies
//     (fetch with credentials "same-origin", and EventSource), so the token is never kept
//     here and never put in a URL.
//   * me() reads GET /ui/me ({"name", "role", "anonymous", "can": {"approve": bool, ...}});
//     pages hide what the role may not do with can(). Without API tokens the server
//     answers an admin named anonymous.
//   * a 401 from any call fires "hookagent:auth-required" on window; session.js asks for
//     a token again.

const JSON_HEADERS = { "Content-Type": "application/json", Accept: "application/json" };

/** An error answer of the API: `{"error": code, "detail": ...}` with its HTTP status. */
export class ApiError extends Error {
  constructor(status, code, detail) {
    super(typeof detail === "string" ? detail : `${status} ${code}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

async function request(method, path, body) {
  const init = { method, headers: JSON_HEADERS, credentials: "same-origin" };
  if (body !== undefined) init.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "network", "the server did not answer");
  }
  if (response.status === 401) {
    window.dispatchEvent(new CustomEvent("hookagent:auth-required"));
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (err) {
      data = { error: "bad_response", detail: text.slice(0, 200) };
    }
  }
  if (!response.ok) {
    const detail = data && data.detail !== undefined ? data.detail : response.statusText;
    throw new ApiError(response.status, (data && data.error) || "http_error", detailText(detail));
  }
  return data;
}

function detailText(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  return JSON.stringify(detail);
}

const enc = encodeURIComponent;

export const api = {
  meta: () => request("GET", "/ui/meta"),
  tasks: ({ status, limit = 200 } = {}) =>
    request("GET", `/tasks/?limit=${limit}${status ? `&status=${enc(status)}` : ""}`),
  counts: () => request("GET", "/tasks/counts"),
  task: (id) => request("GET", `/tasks/${enc(id)}`),
  progress: (id) => request("GET", `/tasks/${enc(id)}/progress`),
  logs: (id, offset, limit) =>
    request("GET", `/tasks/${enc(id)}/logs?offset=${offset}&limit=${limit}`),
  logsDownloadUrl: (id) => `/tasks/${enc(id)}/logs?limit=-1`,
  search: (q, { status, limit = 50 } = {}) =>
    request("GET", `/search?q=${enc(q)}&limit=${limit}${status ? `&status=${enc(status)}` : ""}`),
  action: (id, name, body) => request("POST", `/tasks/${enc(id)}/${enc(name)}`, body || {}),
  /** Change requests per repository, source and agent: opened, merged, closed, rates. */
  stats: () => request("GET", "/stats"),
  /** Worker heartbeats; null when this server has no /workers yet (404). */
  workers: async () => {
    try {
      return await request("GET", "/workers");
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return null;
      throw err;
    }
  },

  /** Live log of one task from `offset`; EventSource resumes with Last-Event-ID itself. */
  logStream: (id, offset) => new EventSource(`/tasks/${enc(id)}/logs/stream?offset=${offset}`),
  /** Every task's creation and status change (`event: task`). */
  taskEvents: () => new EventSource("/tasks/events"),

  /** Who the browser acts as (a 401 when it must sign in first). */
  me: () => request("GET", "/ui/me"),
  // AUTH SEAM: the server sets the HttpOnly SameSite=Strict cookie; the token is not kept here.
  signIn: (token) => request("POST", "/ui/session", { token }),
  signOut: () => request("DELETE", "/ui/session"),
};

/** Whether `who` (an answer of me()) may use the action `name`, as the server says. */
export function can(who, name) {
  return Boolean(who && who.can && who.can[name]);
}
