// Small DOM and formatting helpers shared by every page. No framework: the
// dashboard builds elements with `h()` and updates them in place, which keeps
// the first load small and lets hot paths (queue progress) touch only the
// nodes that changed.

/** Creates an element: h('a', {href: '/x', class: 'btn', onclick: fn}, 'text', child). */
export function h(tag, attrs = null, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value);
      } else if (key === 'class') {
        el.className = value;
      } else if (key === 'dataset') {
        Object.assign(el.dataset, value);
      } else if (key === 'style' && typeof value === 'object') {
        Object.assign(el.style, value);
      } else if (key in el && typeof value !== 'string' && key !== 'list') {
        el[key] = value;
      } else {
        el.setAttribute(key, value === true ? '' : value);
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Escapes nothing: text goes through textContent everywhere, never innerHTML. */
export const text = (value) => document.createTextNode(value ?? '');

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
export function bytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 && unit > 0 ? 1 : 0)} ${UNITS[unit]}`;
}

// One formatter for all numbers: toLocaleString() builds a new one per call,
// which shows up in profiles when hundreds of rows update per frame.
const numberFormat = new Intl.NumberFormat();
export function num(n) {
  return n === null || n === undefined ? '—' : numberFormat.format(Number(n));
}

export function pct(n) {
  return n === null || n === undefined ? '—' : `${Number(n).toFixed(1)}%`;
}

/** "3m 12s" style duration for ETAs and countdowns. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  let s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hh = Math.floor(s / 3600); s -= hh * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
export function dateTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateFormat.format(d);
}

const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
export function relative(iso) {
  if (!iso) return '—';
  const diff = (new Date(iso).getTime() - Date.now()) / 1000;
  const abs = Math.abs(diff);
  const [value, unit] = abs < 60 ? [diff, 'second'] : abs < 3600 ? [diff / 60, 'minute']
    : abs < 86400 ? [diff / 3600, 'hour'] : [diff / 86400, 'day'];
  return relativeFormat.format(Math.round(value), unit);
}

/** A <time> element showing local time with the ISO value as tooltip. */
export function timeEl(iso) {
  return h('time', { datetime: iso || '', title: iso || '' }, dateTime(iso));
}

export function badge(status) {
  return h('span', { class: `badge badge-${String(status || 'unknown').toLowerCase()}` }, status || '—');
}

// ---- toasts -------------------------------------------------------------

const toastRoot = () => document.getElementById('toasts');

/** Shows a toast; level is info | success | warning | error. */
export function toast({ level = 'info', title = '', message = '', action = null, autoDismissSeconds = 6 }) {
  const root = toastRoot();
  if (!root) return;
  const close = () => el.remove();
  const el = h('div', { class: `toast toast-${level}`, role: level === 'error' ? 'alert' : 'status' },
    h('div', { class: 'toast-body' },
      title ? h('strong', null, title) : null,
      message ? h('div', null, message) : null,
      action ? h('a', { href: action.link, 'data-link': '', onclick: close }, action.label) : null),
    h('button', { class: 'icon-btn', 'aria-label': 'Dismiss', onclick: close }, '×'));
  root.append(el);
  while (root.children.length > 4) root.firstElementChild.remove();
  if (autoDismissSeconds) setTimeout(close, autoDismissSeconds * 1000);
}

export function toastError(err, title = 'Something went wrong') {
  toast({ level: 'error', title, message: err?.message || String(err), autoDismissSeconds: 10 });
}

// ---- dialogs ------------------------------------------------------------

/** Opens a modal <dialog> with the given content; returns {dialog, close}. */
export function modal(title, content, { wide = false, onClose = null } = {}) {
  const dialog = h('dialog', { class: wide ? 'modal wide' : 'modal', 'aria-label': title },
    h('header', { class: 'modal-head' },
      h('h2', null, title),
      h('button', { class: 'icon-btn', 'aria-label': 'Close', onclick: () => dialog.close() }, '×')),
    h('div', { class: 'modal-body' }, content));
  dialog.addEventListener('close', () => { dialog.remove(); onClose?.(); });
  dialog.addEventListener('click', (e) => { if (e.target === dialog) dialog.close(); });
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, close: () => dialog.close() };
}

/** Asks for confirmation; resolves to the form values or null when cancelled. */
export function confirmDialog(title, message, { confirmLabel = 'Confirm', danger = false, extra = null } = {}) {
  return new Promise((resolve) => {
    let result = null;
    const form = h('form', { method: 'dialog', class: 'stack' },
      h('p', null, message),
      extra,
      h('div', { class: 'row end' },
        h('button', { type: 'button', class: 'btn', onclick: () => close() }, 'Cancel'),
        h('button', { type: 'submit', class: danger ? 'btn danger' : 'btn primary', 'data-confirm': '' }, confirmLabel)));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      result = Object.fromEntries(new FormData(form).entries());
      close();
    });
    const { close } = modal(title, form, { onClose: () => resolve(result) });
    form.querySelector('[data-confirm]').focus();
  });
}

// ---- states -------------------------------------------------------------

/** Placeholder rows of fixed height so the page does not jump when data arrives. */
export function skeletonRows(columns, rows = 5) {
  return Array.from({ length: rows }, () => h('tr', { class: 'skeleton-row' },
    Array.from({ length: columns }, () => h('td', null, h('span', { class: 'skeleton' })))));
}

/** An empty or error state that says what to do next. */
export function emptyState(title, hint, action = null) {
  return h('div', { class: 'empty' }, h('strong', null, title), h('p', null, hint), action);
}

export function errorState(err, retry) {
  return h('div', { class: 'empty error', role: 'alert' },
    h('strong', null, 'Could not load this page'),
    h('p', null, `${err?.message || err}. Check that the server is running, then try again.`),
    retry ? h('button', { class: 'btn', onclick: retry }, 'Try again') : null);
}

/** Labeled form field. */
export function field(label, input, hint = null) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div', { class: 'field' },
    h('label', { for: id }, label), input,
    hint ? h('small', { class: 'hint' }, hint) : null,
    h('small', { class: 'field-error', 'aria-live': 'polite' }));
}

export function selectEl(name, options, value = '', attrs = {}) {
  return h('select', { name, ...attrs },
    options.map((opt) => {
      const [v, label] = Array.isArray(opt) ? opt : [opt, opt];
      return h('option', { value: v, selected: String(v) === String(value) }, label);
    }));
}

/** Debounce for search inputs. */
export function debounce(fn, ms = 300) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

/** Triggers a browser download of a Blob. */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
