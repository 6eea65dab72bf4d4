// The HTTP API as the dashboard calls it. The key is kept in this tab's sessionStorage (gone
// when the tab closes) and sent only in the Authorization header: never in a URL, so it is in
// no access log, browser history or Referer.

const STORAGE = "listserve.dashboard.session";
const TENANT_KEY_PREFIX = "lsk_"; // service/auth.py
export const SIGNED_OUT = "listserve:key-refused";
// The API's root: the folder the dashboard page is served from (works behind a path prefix).
const ROOT = new URL(".", document.baseURI);

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.type = error.type || "http_error";
    this.details = error.details ?? null;
  }

  /** `[{field, message}]` of a 422 (the API names every refused field). */
  get fields() {
    return Array.isArray(this.details) ? this.details.filter((d) => d && d.field) : [];
  }
}

export function session() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE));
    return saved && saved.key && saved.role ? saved : null;
  } catch {
    return null;
  }
}

export function saveSession(key, role) {
  sessionStorage.setItem(STORAGE, JSON.stringify({ key, role }));
}

export function clearSession() {
  sessionStorage.removeItem(STORAGE);
}

export function apiUrl(path) {
  return new URL(path, ROOT);
}

/** One call: JSON in and out; throws ApiError for any non-2xx answer. */
export async function api(path, { method = "GET", body, key, signal, accept } = {}) {
  const credentials = key ?? session()?.key;
  const headers = { Accept: accept || "application/json" };
  if (credentials) headers.Authorization = `Bearer ${credentials}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(apiUrl(path), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    cache: "no-store",
    credentials: "omit",
  });
  if (response.status === 204) return null;
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (response.status === 401 && key === undefined) {
    // The session's own key was refused (revoked, or the tenant deleted): back to sign-in.
    window.dispatchEvent(new CustomEvent(SIGNED_OUT));
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

/** Which kind of key this is, "tenant" or "admin" (else the ApiError saying why neither).
 *  Tenant keys start with "lsk_", so the likely kind is asked first and a good key costs no
 *  refused request. */
export async function identify(key) {
  const probes = { tenant: "tasks?limit=1", admin: "admin/tasks?limit=1" };
  const order = key.startsWith(TENANT_KEY_PREFIX) ? ["tenant", "admin"] : ["admin", "tenant"];
  try {
    await api(probes[order[0]], { key });
    return order[0];
  } catch (error) {
    if (!(error instanceof ApiError) || ![401, 503].includes(error.status)) throw error;
  }
  await api(probes[order[1]], { key });
  return order[1];
}
