// The REST client: JSON in and out, bearer token, transparent refresh.
//
// Tokens live in localStorage so a reload keeps the session. The access
// token is refreshed in the background shortly before it expires, and once
// more on a 401 (another tab may have rotated it), before giving up and
// sending the user to the login page.

const BASE = '/api/v1';
const KEY = 'mediadl.session';

/** An API error with the server's `detail` and `error_code`. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `Request failed (HTTP ${status})`);
    this.status = status;
    this.code = body?.error_code || null;
    this.body = body;
  }
}

const listeners = new Set();
let session = load();
let refreshTimer = null;
let refreshing = null;

function load() {
  try {
    return JSON.parse(localStorage.getItem(KEY)) || null;
  } catch {
    return null;
  }
}

function save(next) {
  session = next;
  if (next) localStorage.setItem(KEY, JSON.stringify(next));
  else localStorage.removeItem(KEY);
  scheduleRefresh();
  for (const fn of listeners) fn(session);
}

/** Called with the session (or null) whenever it changes. */
export function onSession(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export const currentUser = () => session?.user || null;
export const accessToken = () => session?.access_token || null;
export const role = () => session?.user?.role || null;
export const isAdmin = () => role() === 'admin';
/** Admins and users may queue downloads and manage jobs; viewers only read. */
export const canWrite = () => role() === 'admin' || role() === 'user';

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!session?.refresh_token) return;
  const ttl = Math.max(10, (session.expires_at - Date.now()) / 1000);
  // Refresh at 80% of the lifetime, at least 5 s ahead.
  const inSeconds = Math.max(1, Math.min(ttl * 0.8, ttl - 5));
  refreshTimer = setTimeout(() => refresh().catch(() => {}), inSeconds * 1000);
}

/** Swaps the refresh token for a new access token; one request at a time. */
export function refresh() {
  if (!session?.refresh_token) return Promise.reject(new ApiError(401, { detail: 'Not signed in' }));
  refreshing ??= (async () => {
    try {
      const used = session.refresh_token;
      const res = await fetch(`${BASE}/auth/refresh`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: used }),
      });
      const body = await res.json().catch(() => null);
      if (!res.ok) {
        if (res.status === 401 || res.status === 403) {
          // Refresh tokens are single-use: another tab may have just rotated
          // ours. Adopt its session rather than signing out.
          const stored = load();
          if (stored?.refresh_token && stored.refresh_token !== used) { save(stored); return; }
          save(null);
        }
        throw new ApiError(res.status, body);
      }
      save({
        ...session,
        access_token: body.access_token,
        // Servers that rotate refresh tokens send a new one.
        refresh_token: body.refresh_token || session.refresh_token,
        expires_at: Date.now() + (body.expires_in || 900) * 1000,
      });
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

export async function login(username, password) {
  const res = await fetch(`${BASE}/auth/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, body);
  save({
    access_token: body.access_token,
    refresh_token: body.refresh_token,
    expires_at: Date.now() + (body.expires_in || 900) * 1000,
    user: body.user,
  });
  return body.user;
}

export function logout() {
  save(null);
}

/** Re-reads the current user (role changes, deleted account). */
export async function loadMe() {
  const me = await request('GET', '/auth/me');
  if (session) save({ ...session, user: { ...session.user, ...me } });
  return me;
}

function query(params) {
  if (!params) return '';
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === null || v === undefined || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * Sends a request; returns {body, headers, status}. `raw: true` returns the
 * Response itself (for blobs). A 401 triggers one refresh and a retry.
 */
export async function send(method, path, { params, body, raw = false, headers = {}, retried = false } = {}) {
  const init = { method, headers: { ...headers } };
  if (session?.access_token) init.headers.Authorization = `Bearer ${session.access_token}`;
  if (body !== undefined) {
    if (typeof body === 'string' || body instanceof Blob) {
      init.body = body;
    } else {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
  }
  let res;
  try {
    res = await fetch(`${BASE}${path}${query(params)}`, init);
  } catch (err) {
    throw new ApiError(0, { detail: 'The server cannot be reached', error_code: 'NETWORK' });
  }
  if (res.status === 401 && !retried && session?.refresh_token) {
    try {
      await refresh();
    } catch {
      save(null);
      throw new ApiError(401, { detail: 'Your session has ended; please sign in again' });
    }
    return send(method, path, { params, body, raw, headers, retried: true });
  }
  if (res.status === 401) {
    save(null);
  }
  if (!res.ok) {
    const errBody = await res.json().catch(() => null);
    throw new ApiError(res.status, errBody);
  }
  if (raw) return res;
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  return { body: data, headers: res.headers, status: res.status };
}

/** JSON body of a request. */
export async function request(method, path, options) {
  return (await send(method, path, options)).body;
}

export const get = (path, params) => request('GET', path, { params });
export const post = (path, body, params) => request('POST', path, { body, params });
export const patch = (path, body) => request('PATCH', path, { body });
export const put = (path, body) => request('PUT', path, { body });
export const del = (path, params) => request('DELETE', path, { params });

/**
 * Signed media links of a download ({id, file_url, thumbnail_url}): URLs an
 * <img> or <video> loads without the access token, valid for minutes. Kept
 * until a minute before they expire; ids asked for in the same tick go to
 * the server in one request (POST /downloads/links).
 */
const LINK_BATCH = 200;
const linkCache = new Map(); // id -> {promise, until}
let pendingLinks = null; // id -> {promise, resolve, reject}
export function mediaLinks(id) {
  const cached = linkCache.get(id);
  if (cached && cached.until > Date.now()) return cached.promise;
  if (!pendingLinks) {
    pendingLinks = new Map();
    setTimeout(fetchPendingLinks, 0);
  }
  let entry = pendingLinks.get(id);
  if (!entry) {
    entry = {};
    entry.promise = new Promise((resolve, reject) => Object.assign(entry, { resolve, reject }));
    pendingLinks.set(id, entry);
  }
  return entry.promise;
}

async function fetchPendingLinks() {
  const batch = pendingLinks;
  pendingLinks = null;
  const ids = [...batch.keys()];
  if (linkCache.size > 2000) linkCache.clear();
  for (let i = 0; i < ids.length; i += LINK_BATCH) {
    const chunk = ids.slice(i, i + LINK_BATCH);
    try {
      const body = await post('/downloads/links', { ids: chunk });
      const until = Date.parse(body.expires_at) - 60_000;
      for (const links of body.links) {
        linkCache.set(links.id, { promise: Promise.resolve(links), until });
        batch.get(links.id)?.resolve(links);
      }
    } catch (err) {
      for (const id of chunk) batch.get(id).reject(err);
    }
  }
}

// Another tab signed in, refreshed or signed out: follow it.
window.addEventListener('storage', (event) => {
  if (event.key !== KEY) return;
  session = load();
  scheduleRefresh();
  for (const fn of listeners) fn(session);
});

// On load: if the stored access token has expired, refresh before anything else.
scheduleRefresh();
