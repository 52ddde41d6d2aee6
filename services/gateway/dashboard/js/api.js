// The public REST API, with the API key from this tab's sessionStorage as `Authorization: Bearer`.
// No cookie is ever set or read, so there is nothing a cross-site request could ride on.

const KEY_SLOT = "gpufleet.apiKey";

export const session = {
  get key() {
    return sessionStorage.getItem(KEY_SLOT);
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY_SLOT, value);
    else sessionStorage.removeItem(KEY_SLOT);
  },
};

/** An answer other than 2xx, with the RFC 9457 problem body when there is one. */
export class ApiError extends Error {
  constructor(status, problem, path) {
    super(problem?.detail || problem?.title || `HTTP ${status} from ${path}`);
    this.status = status;
    this.problem = problem;
    this.path = path;
  }

  get notFound() {
    return this.status === 404;
  }
}

function url(path, params) {
  const u = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") u.searchParams.set(k, String(v));
  }
  return u.pathname + u.search;
}

export class Api {
  constructor(key, { onUnauthorized } = {}) {
    this.key = key;
    this.onUnauthorized = onUnauthorized || (() => {});
  }

  headers(extra) {
    return { Authorization: `Bearer ${this.key}`, ...extra };
  }

  /** The raw fetch Response (for streams); refuses nothing itself. */
  async raw(path, { params, headers, signal, method = "GET", body } = {}) {
    const response = await fetch(url(path, params), {
      method,
      headers: this.headers(headers),
      signal,
      body,
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    if (response.status === 401) this.onUnauthorized();
    return response;
  }

  async check(response, path) {
    if (response.ok) return response;
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      problem = null;
    }
    throw new ApiError(response.status, problem, path);
  }

  async json(path, options = {}) {
    const response = await this.check(await this.raw(path, options), path);
    return response.status === 204 ? null : response.json();
  }

  async post(path, payload, options = {}) {
    return this.json(path, {
      ...options,
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: payload === undefined ? undefined : JSON.stringify(payload),
    });
  }

  /** Every page of a cursor-paged list, up to `max` items. */
  async all(path, field, { params, signal, max = 1000 } = {}) {
    const items = [];
    let cursor = null;
    do {
      const page = await this.json(path, { params: { ...params, cursor }, signal });
      items.push(...(page[field] || []));
      cursor = page.next_cursor;
    } while (cursor && items.length < max);
    return items;
  }
}

/** Runs `load`; a 404 (the route is not served by this gateway) resolves to `{unavailable: true}`. */
export async function optional(load) {
  try {
    return { value: await load() };
  } catch (err) {
    if (err instanceof ApiError && err.notFound) return { unavailable: true, error: err };
    throw err;
  }
}
