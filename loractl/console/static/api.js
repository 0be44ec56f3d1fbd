// The console's calls: JSON to this server's /api proxy (which signs for the API), and PUTs of
// file bytes straight to the presigned S3 URLs the API hands out. Written for this console (MIT).

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "HTTP_ERROR";
    this.details = error.details || [];
  }
}

export async function api(method, path, body, headers = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(`/api${path}`, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body, headers) => api("POST", path, body || {}, headers);
export const del = (path) => api("DELETE", path);

/** Every item of a paged list (follows next_token). */
export async function listAll(path) {
  const items = [];
  let token = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await get(token ? `${path}${sep}next_token=${encodeURIComponent(token)}` : path);
    items.push(...(page.items || []));
    token = page.next_token;
  } while (token);
  return items;
}

/** PUT a Blob to a presigned URL, reporting bytes sent; resolves with the response's ETag. */
export function putBlob(url, blob, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    for (const [name, value] of Object.entries(headers || {})) {
      if (name.toLowerCase() !== "content-length") xhr.setRequestHeader(name, value);
    }
    let reported = 0;
    xhr.upload.onprogress = (event) => { onProgress(event.loaded - reported); reported = event.loaded; };
    xhr.onload = () => {
      if (xhr.status >= 300) { reject(new Error(`upload failed: HTTP ${xhr.status}`)); return; }
      onProgress(blob.size - reported);
      resolve(xhr.getResponseHeader("ETag"));
    };
    xhr.onerror = () => reject(new Error("upload failed: the storage URL could not be reached"));
    xhr.send(blob);
  });
}

/** Run ``task`` over ``items`` with at most ``limit`` at once. */
export async function inParallel(items, limit, task) {
  const results = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index], index);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export function bytes(n) {
  if (n == null) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function duration(seconds) {
  if (seconds == null) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export const dollars = (n) => (n == null ? "" : `$${Number(n).toFixed(2)}`);
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
