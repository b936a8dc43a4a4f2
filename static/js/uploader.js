// @ts-check
/**
 * Resumable courseware uploads straight to the object store (protocol: docs/courseware.md, "Upload").
 *
 * The file is sliced into the parts the server chose; several parts are PUT at once to short-lived URLs
 * the server hands out (S3 presigned URLs, or the embedded store's signed /objects URLs), each retried
 * with backoff; the bytes never pass through the application. The upload's id is kept in localStorage
 * under the file's identity (name, size, type, last modified), so after a cut connection or a reload
 * the same file resumes: the server lists the parts the store holds and only the others are sent.
 *
 * Usage:
 *   import { upload, Uploader } from "/static/js/uploader.js";
 *   const done = await upload(file, { onProgress: (sent, total) => show(sent, total) });
 *   // done.id (the completed upload) goes to POST /api/courseware/{id}/versions
 * or, to pause and cancel:
 *   const up = new Uploader(file, { onProgress: (sent, total, p) => show(p.percent, p.state), concurrency: 3 });
 *   const running = up.run();           // resolves with the completed upload
 *   up.pause(); up.resume();            // a paused upload keeps its stored parts
 *   await up.cancel();                  // aborts it on the server; `running` rejects with UploadCancelled
 */

import { api } from "./api.js";

const KEY_PREFIX = "lectern.upload.";
const URL_BATCH = 20; // part URLs asked for at once
const URL_MAX_AGE_MS = 8 * 60 * 1000; // the server's URLs live 10 minutes: ask again before that

/**
 * @typedef {{ number: number, etag: string, size: number }} StoredPart
 * @typedef {{ id: number, file_name: string, content_type: string, size_bytes: number, part_size: number,
 *   part_count: number, state: string, parts?: StoredPart[], stored_bytes?: number }} UploadView
 * @typedef {{ state: "starting" | "uploading" | "paused" | "completing" | "done" | "failed" | "cancelled",
 *   loadedBytes: number, totalBytes: number, percent: number, uploadId: number | null }} Progress
 * @typedef {{ onProgress?: (loadedBytes: number, totalBytes: number, progress: Progress) => void,
 *   concurrency?: number, retries?: number }} Options
 */

/** run() rejects with this after cancel(). */
export class UploadCancelled extends Error {}

/** @param {File} file @returns {string} what identifies "the same file" across reloads */
export function fileIdentity(file) {
  return [file.name, file.size, file.type, file.lastModified].join("|");
}

/** @param {File} file @returns {string} the content type the server accepts for it */
export function contentType(file) {
  if (file.type) return file.type;
  return file.name.toLowerCase().endsWith(".pdf") ? "application/pdf" : "video/mp4";
}

/** @param {number} ms */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class Uploader {
  /** @param {File} file @param {Options} [options] */
  constructor(file, options = {}) {
    this.file = file;
    this.onProgress = options.onProgress || (() => {});
    this.concurrency = Math.max(1, options.concurrency || 3);
    this.retries = options.retries ?? 6;
    /** @type {UploadView | null} */
    this.upload = null;
    /** @type {Map<number, string>} part number -> ETag */
    this.etags = new Map();
    /** @type {Map<number, number>} part number -> bytes sent so far of a part in flight */
    this.inFlight = new Map();
    /** @type {Map<number, {url: string, at: number}>} */
    this.urls = new Map();
    /** @type {Set<XMLHttpRequest>} */
    this.requests = new Set();
    this.paused = false;
    this.cancelled = false;
    /** @type {Progress["state"]} */
    this.state = "starting";
    /** @type {(() => void) | null} */
    this.wake = null;
  }

  get storageKey() {
    return KEY_PREFIX + fileIdentity(this.file);
  }

  /** @returns {Progress} */
  progress() {
    const total = this.file.size;
    let loaded = 0;
    for (const n of this.etags.keys()) loaded += this.partSize(n);
    for (const bytes of this.inFlight.values()) loaded += bytes;
    return {
      state: this.state,
      loadedBytes: Math.min(loaded, total),
      totalBytes: total,
      percent: total ? Math.floor((Math.min(loaded, total) * 100) / total) : 100,
      uploadId: this.upload ? this.upload.id : null,
    };
  }

  report() {
    const p = this.progress();
    this.onProgress(p.loadedBytes, p.totalBytes, p);
  }

  /** @param {number} n @returns {number} */
  partSize(n) {
    const u = /** @type {UploadView} */ (this.upload);
    return Math.min(u.part_size, u.size_bytes - (n - 1) * u.part_size);
  }

  /** Start, or resume the upload of this file kept from before; resolves with the completed upload. */
  async run() {
    this.report();
    this.upload = await this.resumeOrStart();
    this.state = "uploading";
    this.report();
    const todo = [];
    for (let n = 1; n <= this.upload.part_count; n++) if (!this.etags.has(n)) todo.push(n);
    const workers = [];
    for (let i = 0; i < Math.min(this.concurrency, todo.length); i++) workers.push(this.worker(todo));
    try {
      await Promise.all(workers);
      this.checkCancelled();
      this.state = "completing";
      this.report();
      const parts = [...this.etags.entries()].sort((a, b) => a[0] - b[0]).map(([number, etag]) => ({ number, etag }));
      const done = await api("POST", `/api/courseware/uploads/${this.upload.id}/complete`, { parts });
      this.forget();
      this.state = "done";
      this.report();
      return /** @type {UploadView} */ (done);
    } catch (err) {
      if (!(err instanceof UploadCancelled)) this.state = "failed";
      this.report();
      throw err;
    }
  }

  /** @returns {Promise<UploadView>} */
  async resumeOrStart() {
    let kept = null;
    try {
      kept = localStorage.getItem(this.storageKey);
    } catch {
      kept = null;
    }
    if (kept) {
      try {
        /** @type {UploadView} */
        const found = await api("GET", `/api/courseware/uploads/${Number(kept)}`);
        if (found.state === "open" && found.size_bytes === this.file.size) {
          for (const p of found.parts || []) this.etags.set(p.number, p.etag);
          return found;
        }
      } catch {
        // Gone, expired or someone else's: start afresh.
      }
      this.forget();
    }
    /** @type {UploadView} */
    const started = await api("POST", "/api/courseware/uploads", {
      file_name: this.file.name,
      size_bytes: this.file.size,
      content_type: contentType(this.file),
    });
    try {
      localStorage.setItem(this.storageKey, String(started.id));
    } catch {
      // No storage (private mode): the upload still works, it just cannot resume after a reload.
    }
    return started;
  }

  forget() {
    try {
      localStorage.removeItem(this.storageKey);
    } catch {
      // nothing kept
    }
  }

  /** @param {number[]} todo part numbers still to send (shared by the workers) */
  async worker(todo) {
    for (;;) {
      await this.whileRunning();
      const n = todo.shift();
      if (n === undefined) return;
      await this.sendPart(n);
    }
  }

  async whileRunning() {
    this.checkCancelled();
    while (this.paused) {
      await new Promise((resolve) => {
        this.wake = () => resolve(undefined);
      });
      this.checkCancelled();
    }
  }

  checkCancelled() {
    if (this.cancelled) throw new UploadCancelled("上传已取消");
  }

  /** @param {number} n */
  async urlFor(n) {
    const have = this.urls.get(n);
    if (have && Date.now() - have.at < URL_MAX_AGE_MS) return have.url;
    const u = /** @type {UploadView} */ (this.upload);
    const numbers = [n];
    for (let m = n + 1; numbers.length < URL_BATCH && m <= u.part_count; m++) {
      if (!this.etags.has(m)) numbers.push(m);
    }
    const answer = await api("POST", `/api/courseware/uploads/${u.id}/parts`, { numbers });
    const at = Date.now();
    for (const p of answer.parts) this.urls.set(p.number, { url: p.url, at });
    return /** @type {{url: string}} */ (this.urls.get(n)).url;
  }

  /** @param {number} n */
  async sendPart(n) {
    const u = /** @type {UploadView} */ (this.upload);
    const start = (n - 1) * u.part_size;
    const blob = this.file.slice(start, start + this.partSize(n));
    for (let attempt = 0; ; attempt++) {
      await this.whileRunning();
      try {
        const etag = await this.put(n, await this.urlFor(n), blob);
        this.etags.set(n, etag);
        this.inFlight.delete(n);
        this.report();
        return;
      } catch (err) {
        this.inFlight.delete(n);
        this.report();
        if (this.cancelled) throw new UploadCancelled("上传已取消");
        if (this.paused) continue; // aborted by pause(): sent again on resume, not counted
        if (err instanceof PartRefused && err.status === 403) this.urls.delete(n); // expired: a new URL
        if (attempt >= this.retries) throw err;
        await sleep(Math.min(30000, 1000 * 2 ** attempt));
      }
    }
  }

  /**
   * PUT one part with progress; resolves with its ETag.
   * @param {number} n @param {string} url @param {Blob} blob @returns {Promise<string>}
   */
  put(n, url, blob) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      this.requests.add(xhr);
      xhr.open("PUT", url);
      xhr.upload.onprogress = (e) => {
        this.inFlight.set(n, e.loaded);
        this.report();
      };
      xhr.onload = () => {
        this.requests.delete(xhr);
        const etag = (xhr.getResponseHeader("ETag") || "").replace(/"/g, "");
        if (xhr.status >= 200 && xhr.status < 300 && etag) resolve(etag);
        else reject(new PartRefused(xhr.status, `part ${n}: HTTP ${xhr.status}`));
      };
      xhr.onerror = xhr.onabort = () => {
        this.requests.delete(xhr);
        reject(new PartRefused(0, `part ${n}: connection lost`));
      };
      xhr.send(blob);
    });
  }

  /** Stop sending (parts in flight are dropped and sent again on resume). */
  pause() {
    if (this.state !== "uploading") return;
    this.paused = true;
    this.state = "paused";
    for (const xhr of [...this.requests]) xhr.abort();
    this.report();
  }

  resume() {
    if (!this.paused) return;
    this.paused = false;
    this.state = "uploading";
    this.report();
    const wake = this.wake;
    this.wake = null;
    if (wake) wake();
  }

  /** Abort the upload on the server (its parts are deleted) and forget it. */
  async cancel() {
    this.cancelled = true;
    this.state = "cancelled";
    for (const xhr of [...this.requests]) xhr.abort();
    this.paused = false;
    const wake = this.wake;
    this.wake = null;
    if (wake) wake();
    this.forget();
    if (this.upload && this.upload.state === "open") {
      try {
        await api("DELETE", `/api/courseware/uploads/${this.upload.id}`);
      } catch {
        // Already completed or gone: nothing to abort.
      }
    }
    this.report();
  }
}

/**
 * Upload `file` (resuming a kept upload of the same file); resolves with the completed upload.
 * @param {File} file @param {Options} [options] @returns {Promise<UploadView>}
 */
export function upload(file, options = {}) {
  return new Uploader(file, options).run();
}

/** A part's PUT that did not succeed (status 0: the connection went away). */
export class PartRefused extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}
