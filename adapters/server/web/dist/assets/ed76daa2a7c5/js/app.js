// Entry point: routing, the navigation bar, theme, live connection state and
// notifications. Pages are loaded on demand (dynamic import) so the first
// load carries only what the current page needs.

import * as api from './api.js';
import * as live from './live.js';
import { h, mount, toast, errorState } from './ui.js';

/** path → [module, title, who may see it]. */
const ROUTES = {
  '/dashboard': ['dashboard', 'Dashboard', 'all'],
  '/downloads': ['downloads', 'Downloads', 'all'],
  '/queue': ['queue', 'Queue', 'all'],
  '/scheduler': ['scheduler', 'Scheduler', 'all'],
  '/platforms': ['platforms', 'Platforms & sources', 'all'],
  '/settings': ['settings', 'Settings', 'admin'],
  '/logs': ['logs', 'Logs', 'all'],
  '/users': ['users', 'Users', 'admin'],
  '/login': ['login', 'Sign in', 'public'],
};
const ALIASES = { '/': '/dashboard', '/history': '/downloads', '/platforms-sources': '/platforms' };

const main = document.getElementById('main');
const nav = document.getElementById('nav-links');
let cleanups = [];
let renderSeq = 0;

function resolve(pathname) {
  const path = pathname.replace(/\/+$/, '') || '/';
  return ALIASES[path] || path;
}

/** Navigates within the app (pushes history unless replace). */
export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

function buildNav() {
  const role = api.role();
  const current = resolve(location.pathname);
  mount(nav, Object.entries(ROUTES)
    .filter(([, [, , who]]) => who === 'all' || (who === 'admin' && role === 'admin'))
    .map(([path, [, title]]) => h('li', null,
      h('a', { href: path, 'data-link': '', 'aria-current': path === current ? 'page' : null }, title))));
  document.getElementById('nav').hidden = !api.currentUser();
  document.getElementById('nav-toggle').hidden = !api.currentUser();
  const user = api.currentUser();
  mount(document.getElementById('user-name'), user ? `${user.username} (${user.role})` : '');
  document.getElementById('logout').title = user ? `Signed in as ${user.username} (${user.role})` : '';
}

async function render() {
  const seq = ++renderSeq;
  for (const fn of cleanups) { try { fn(); } catch (err) { console.error(err); } }
  cleanups = [];
  document.body.classList.remove('nav-open');

  let path = resolve(location.pathname);
  if (path !== location.pathname && ALIASES[location.pathname.replace(/\/+$/, '') || '/']) {
    history.replaceState(null, '', path + location.search);
  }
  const signedIn = !!api.currentUser();
  if (!signedIn && path !== '/login') {
    const next = location.pathname + location.search;
    history.replaceState(null, '', `/login${next && next !== '/' ? `?next=${encodeURIComponent(next)}` : ''}`);
    path = '/login';
  } else if (signedIn && path === '/login') {
    history.replaceState(null, '', '/dashboard');
    path = '/dashboard';
  }
  buildNav();

  const route = ROUTES[path];
  if (!route) {
    document.title = 'Not found · mediadl';
    mount(main, h('div', { class: 'empty' }, h('strong', null, 'Page not found'),
      h('p', null, 'This address is not a page of the dashboard. Use the navigation bar, or go to the '),
      h('a', { href: '/dashboard', 'data-link': '' }, 'dashboard')));
    return;
  }
  const [module, title, who] = route;
  document.title = `${title} · mediadl`;
  if (who === 'admin' && api.role() !== 'admin') {
    mount(main, h('div', { class: 'empty' }, h('strong', null, `${title} is for administrators`),
      h('p', null, 'Your account cannot open this page. Ask an administrator if you need access.')));
    return;
  }
  const ctx = {
    params: new URLSearchParams(location.search),
    navigate,
    onCleanup: (fn) => cleanups.push(fn),
    /** Keeps the page's filters in the address bar without a new history entry. */
    setParams(params) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) if (v !== '' && v !== null && v !== undefined) q.set(k, v);
      const s = q.toString();
      history.replaceState(null, '', `${location.pathname}${s ? `?${s}` : ''}`);
    },
    isCurrent: () => seq === renderSeq,
  };
  try {
    const page = await import(`./pages/${module}.js`);
    if (seq !== renderSeq) return;
    const root = h('section', { class: 'page', 'data-page': module, 'aria-labelledby': 'page-title' });
    mount(main, root);
    await page.default(root, ctx);
    // When the page had its data on screen (read by the load-time test).
    if (seq === renderSeq) performance.mark(`mediadl:ready:${module}`);
  } catch (err) {
    console.error(err);
    if (seq === renderSeq) mount(main, errorState(err, render));
  }
  if (seq === renderSeq) {
    main.focus({ preventScroll: true });
  }
}

// ---- links --------------------------------------------------------------

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[href]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', render);

// ---- theme --------------------------------------------------------------

const THEMES = ['auto', 'light', 'dark'];
function applyTheme(theme) {
  if (theme === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  const btn = document.getElementById('theme-toggle');
  btn.textContent = { auto: '◐ Auto', light: '☀ Light', dark: '☾ Dark' }[theme];
  btn.setAttribute('aria-label', `Theme: ${theme}. Change theme`);
}
document.getElementById('theme-toggle').addEventListener('click', () => {
  const now = localStorage.getItem('mediadl.theme') || 'auto';
  const next = THEMES[(THEMES.indexOf(now) + 1) % THEMES.length];
  localStorage.setItem('mediadl.theme', next);
  applyTheme(next);
});
applyTheme(localStorage.getItem('mediadl.theme') || 'auto');

document.getElementById('nav-toggle').addEventListener('click', () => {
  const open = document.body.classList.toggle('nav-open');
  document.getElementById('nav-toggle').setAttribute('aria-expanded', String(open));
});

document.getElementById('logout').addEventListener('click', () => {
  api.logout();
  navigate('/login');
});

// ---- live connection and notifications ----------------------------------

live.onState((state) => {
  const el = document.getElementById('live-state');
  el.dataset.state = state;
  el.textContent = { live: 'Live', connecting: 'Connecting…', offline: 'Offline — reconnecting' }[state];
  el.title = state === 'live' ? 'Receiving live updates' : 'Live updates paused; retrying automatically';
});

const notifyBtn = document.getElementById('notify-toggle');
function updateNotifyButton() {
  notifyBtn.hidden = !('Notification' in window) || Notification.permission !== 'default';
}
notifyBtn.addEventListener('click', async () => {
  try { await Notification.requestPermission(); } catch { /* older browsers */ }
  updateNotifyButton();
});
updateNotifyButton();

live.on('notification', (data) => {
  toast({
    level: data.level || 'info',
    title: data.title,
    message: data.message,
    action: data.action,
    autoDismissSeconds: data.auto_dismiss_seconds ?? (data.level === 'error' ? 0 : 6),
  });
  if ('Notification' in window && Notification.permission === 'granted' && document.visibilityState !== 'visible') {
    const n = new Notification(data.title || 'mediadl', { body: data.message || '', tag: data.topic || undefined });
    n.onclick = () => { window.focus(); if (data.action?.link) navigate(data.action.link); n.close(); };
  }
});

api.onSession((session) => {
  buildNav();
  if (session) live.start();
  else if (resolve(location.pathname) !== '/login') navigate('/login', { replace: true });
});

// ---- start --------------------------------------------------------------

if (api.currentUser()) {
  live.start();
  // The role may have changed since the last visit; the token may be stale.
  api.loadMe().then(buildNav).catch(() => {});
}
render();
