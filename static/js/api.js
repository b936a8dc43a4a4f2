// @ts-check
/** Small fetch wrapper for Lectern's JSON API: CSRF header, JSON errors as exceptions. */

/** An error answered by the API in Lectern's one error shape. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {string | null} field
   * @param {Record<string, unknown> | null} [details]
   */
  constructor(status, code, message, field, details = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.details = details;
  }
}

// The API hands the CSRF token out only in the login answer (GET /api/me does not repeat it), so it is
// kept in localStorage: every tab of this origin shares the one server-side session, and so the token.
const CSRF_KEY = "lectern.csrf";

/** @returns {string} the CSRF token kept after login, or "" */
export function csrfToken() {
  try {
    return localStorage.getItem(CSRF_KEY) || "";
  } catch {
    return "";
  }
}

/** @param {string} token the token, or "" to forget it */
export function rememberCsrf(token) {
  try {
    if (token) localStorage.setItem(CSRF_KEY, token);
    else localStorage.removeItem(CSRF_KEY);
  } catch {
    // Storage refused (private mode): writes will answer 403 and the page asks to log in again.
  }
}

/**
 * Call the API; resolves with the parsed JSON body (null for 204), rejects with ApiError.
 * A failure to reach the server at all rejects with a TypeError from fetch.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // A proxy's HTML error page, say: keep the status, there is no JSON error to read.
    data = null;
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(
      res.status,
      err.code || "error",
      err.message || res.statusText,
      err.field || null,
      err.details || null,
    );
  }
  return data;
}
