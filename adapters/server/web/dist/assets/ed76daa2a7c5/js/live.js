// The WebSocket: `/ws/downloads?token=JWT`, events `{type, timestamp, data}`.
// Reconnects with exponential backoff (1 s doubling to 30 s, with jitter),
// reconnects at once when the token changes, and tells subscribers about the
// connection state so the nav bar can show it.

import { accessToken, onSession, refresh } from './api.js';

const handlers = new Map();
const stateListeners = new Set();
let socket = null;
let backoff = 1000;
let retryTimer = null;
let state = 'offline';
let wanted = false;
let lastToken = null;

/** Subscribes to one event type ('*' for all); returns the unsubscribe function. */
export function on(type, fn) {
  if (!handlers.has(type)) handlers.set(type, new Set());
  handlers.get(type).add(fn);
  return () => handlers.get(type)?.delete(fn);
}

/** Subscribes to connection state: 'connecting' | 'live' | 'offline'. */
export function onState(fn) {
  stateListeners.add(fn);
  fn(state);
  return () => stateListeners.delete(fn);
}

function setState(next) {
  state = next;
  for (const fn of stateListeners) fn(state);
}

function dispatch(event) {
  for (const fn of handlers.get(event.type) || []) {
    try { fn(event.data, event); } catch (err) { console.error(err); }
  }
  for (const fn of handlers.get('*') || []) {
    try { fn(event.data, event); } catch (err) { console.error(err); }
  }
}

export function start() {
  if (wanted && socket) return;
  wanted = true;
  connect();
}

export function stop() {
  wanted = false;
  clearTimeout(retryTimer);
  if (socket) {
    socket.onclose = null;
    socket.close();
    socket = null;
  }
  setState('offline');
}

function connect() {
  clearTimeout(retryTimer);
  const token = accessToken();
  if (!wanted || !token) return;
  lastToken = token;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  setState('connecting');
  const ws = new WebSocket(`${proto}//${location.host}/ws/downloads?token=${encodeURIComponent(token)}`);
  socket = ws;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    backoff = 1000;
    setState('live');
    dispatch({ type: 'connected', data: {} });
  };
  ws.onmessage = (msg) => {
    let event;
    try { event = JSON.parse(msg.data); } catch { return; }
    if (event && typeof event.type === 'string') dispatch(event);
  };
  ws.onclose = (ev) => {
    if (socket !== ws) return;
    socket = null;
    setState('offline');
    if (!wanted) return;
    // A refused handshake usually means the token expired: refresh first.
    if (!opened || ev.code === 1008 || ev.code === 4001) refresh().catch(() => {});
    const delay = backoff * (0.75 + Math.random() * 0.5);
    backoff = Math.min(backoff * 2, 30_000);
    retryTimer = setTimeout(connect, delay);
  };
}

// A fresh token (refresh, login) reconnects with it; logout disconnects.
onSession((session) => {
  if (!session) { stop(); return; }
  if (wanted && session.access_token !== lastToken && state !== 'live') connect();
});

// Coming back online or to the tab: retry now instead of waiting out the backoff.
window.addEventListener('online', () => { if (wanted && !socket) { backoff = 1000; connect(); } });
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && wanted && !socket) { backoff = 1000; connect(); }
});
