// @ts-check
/** Small fetch wrapper for Lectern's JSON API: CSRF header, JSON errors as exceptions. */

/** An error answered by the API in Lectern's one error shape. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {string | null} field
   */
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** @returns {string} the CSRF token kept after login, or "" */
export function csrfToken() {
  return sessionStorage.getItem("lectern.csrf") || "";
}

/** @param {string} token */
export function rememberCsrf(token) {
  sessionStorage.setItem("lectern.csrf", token);
}

/**
 * Call the API; resolves with the parsed JSON body, rejects with ApiError.
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
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.code || "error", err.message || res.statusText, err.field || null);
  }
  return data;
}
