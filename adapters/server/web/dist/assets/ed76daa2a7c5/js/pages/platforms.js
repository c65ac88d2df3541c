import * as api from '../api.js';
import {
  h, mount, badge, timeEl, relative, emptyState, errorState, field, selectEl, toast, toastError,
} from '../ui.js';

/** The server lists a `cookies` summary only for platforms that read a cookie file. */
const takesCookies = (p) => p.cookies !== undefined && p.cookies !== null;

export default async function render(root, ctx) {
  const writer = api.canWrite();
  const admin = api.isAdmin();
  const list = h('div', { class: 'grid cols-2' }, h('div', { class: 'card', style: { minHeight: '180px' } }, h('span', { class: 'skeleton' })));
  const monitors = h('tbody');
  mount(root,
    h('div', { class: 'page-head' }, h('h1', { id: 'page-title' }, 'Platforms & sources')),
    list,
    h('div', { class: 'section' }, h('h2', null, 'Forum monitors'),
      writer ? monitorForm() : null,
      h('div', { class: 'table-wrap', style: { marginTop: '12px' } }, h('table', { 'data-monitors': '' },
        h('thead', null, h('tr', null, h('th', null, 'Forum / thread'), h('th', null, 'Status'), h('th', null, 'Monitored until'),
          h('th', { class: 'hide-sm' }, 'Last check'), h('th', { class: 'hide-sm' }, 'Next check'))), monitors))));

  function downloaderRow(d) {
    const reason = d.reason || d.unavailable_reason || d.status_reason || d.message;
    return h('li', null, h('strong', null, d.display_name || d.name), ' ', badge(d.enabled === false ? 'unavailable' : 'enabled'),
      reason ? h('div', { class: 'muted' }, reason) : null);
  }

  function cookieForm(p) {
    const textarea = h('textarea', { name: 'cookies', placeholder: '# Netscape HTTP Cookie File\n.example.com\tTRUE\t/\tTRUE\t0\tsessionid\t…', 'aria-label': `Cookies for ${p.name}` });
    const file = h('input', { type: 'file', accept: '.txt,text/plain', 'aria-label': 'Cookie file' });
    file.addEventListener('change', async () => { if (file.files[0]) textarea.value = await file.files[0].text(); });
    const c = p.cookies || {};
    const expired = c.expires_at && new Date(c.expires_at) < new Date();
    const summary = h('p', { style: { margin: 0 }, 'data-cookie-status': '' }, c.present
      ? [badge(c.error ? 'error' : expired ? 'expired' : 'active'), ` ${c.count} cookie(s)`,
        c.expires_at ? [', first expires ', relative(c.expires_at)] : null, c.error ? h('div', { class: 'form-error' }, c.error) : null]
      : [badge('none'), ' No cookies stored: downloads that need a login will fail.']);
    const remove = c.present ? h('button', { class: 'btn danger', type: 'button', 'data-action': 'delete', onclick: async () => {
      try { await api.del(`/platforms/${encodeURIComponent(p.name)}/cookies`); toast({ level: 'success', title: 'Cookies removed' }); ctx.navigate(location.pathname, { replace: true }); }
      catch (err) { toastError(err, 'Could not remove the cookies'); }
    } }, 'Remove cookies') : null;
    const form = h('form', { class: 'stack' }, summary,
      h('p', { class: 'muted', style: { margin: 0 } }, 'Paste or choose a cookies.txt (Netscape format) exported from a browser where you are logged in. It is stored on the server and never shown again.'),
      file, textarea, h('div', { class: 'row end' }, remove, h('button', { class: 'btn primary', type: 'submit' }, 'Upload cookies')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!textarea.value.trim()) { toast({ level: 'warning', title: 'No cookies', message: 'Paste the cookie file or choose it first.' }); return; }
      try {
        await api.request('PUT', `/platforms/${encodeURIComponent(p.name)}/cookies`, { body: textarea.value, headers: { 'Content-Type': 'text/plain' } });
        textarea.value = '';
        toast({ level: 'success', title: `Cookies saved for ${p.display_name || p.name}` });
        ctx.navigate(location.pathname, { replace: true });
      } catch (err) { toastError(err, 'Could not save the cookies'); }
    });
    return h('details', { open: !c.present || expired || !!c.error }, h('summary', null, 'Cookies'), form);
  }

  function quickDownload(p) {
    if (!writer || !['instagram', 'tiktok'].includes(p.name)) return null;
    const username = h('input', { name: 'username', required: true, placeholder: 'username' });
    const type = selectEl('content_type', p.content_types || [], (p.content_types || [])[0]);
    const max = h('input', { name: 'max_downloads', type: 'number', min: 1, value: 15, style: { width: '90px' } });
    const form = h('form', { class: 'form-grid' }, field('Username', username),
      p.name === 'instagram' ? field('Content', type) : null, field('Max items', max),
      h('button', { class: 'btn', type: 'submit' }, 'Download now'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = { username: username.value.trim(), max_downloads: Number(max.value) || 15 };
      if (p.name === 'instagram') body.content_type = type.value;
      try {
        const res = await api.post(`/platforms/${p.name}/download`, body);
        toast({ level: 'success', title: 'Queued', message: `${res.message || 'Download queued'} (#${res.queue_id})`, action: { label: 'Open the queue', link: '/queue' } });
      } catch (err) { toastError(err, 'Could not queue'); }
    });
    return h('details', null, h('summary', null, 'Download a profile now'), form);
  }

  function card(p) {
    return h('article', { class: 'card stack platform-card', 'data-platform': p.name },
      h('h2', null, p.display_name || p.name, badge(p.enabled === false ? 'disabled' : (p.status || 'enabled'))),
      p.reason ? h('p', { class: 'form-error' }, p.reason) : null,
      h('dl', { class: 'kv' },
        h('dt', null, 'Content'), h('dd', null, (p.content_types || []).join(', ') || '—'),
        h('dt', null, 'Features'), h('dd', null, (p.features || []).join(', ').replaceAll('_', ' ') || '—'),
        h('dt', null, 'Last download'), h('dd', null, p.last_successful_download ? [relative(p.last_successful_download), ' (', timeEl(p.last_successful_download), ')'] : 'never')),
      p.downloaders?.length ? h('div', null, h('strong', null, 'Downloaders'), h('ul', { style: { margin: '4px 0 0', paddingLeft: '18px' } }, p.downloaders.map(downloaderRow))) : null,
      admin && takesCookies(p) ? cookieForm(p) : null,
      quickDownload(p));
  }

  function monitorForm() {
    const forum = h('input', { name: 'forum_name', required: true, placeholder: 'PicturePub' });
    const threadUrl = h('input', { name: 'thread_url', type: 'url', required: true, placeholder: 'https://forum.example/thread/123' });
    const title = h('input', { name: 'thread_title', placeholder: 'optional' });
    const days = h('input', { name: 'monitor_days', type: 'number', min: 1, max: 3650, value: 30 });
    const error = h('p', { class: 'form-error', role: 'alert' });
    const form = h('form', { class: 'card stack' },
      h('div', { class: 'form-grid' }, field('Forum name', forum), h('div', { style: { gridColumn: 'span 2' } }, field('Thread URL', threadUrl)),
        field('Title', title), field('Days to monitor', days), h('button', { class: 'btn primary', type: 'submit' }, 'Monitor thread')), error);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.textContent = '';
      try {
        const res = await api.post('/platforms/forum/monitor', {
          forum_name: forum.value.trim(), thread_url: threadUrl.value.trim(), thread_title: title.value.trim() || undefined, monitor_days: Number(days.value) || 30,
        });
        toast({ level: 'success', title: 'Monitoring', message: `${res.thread_id}: ${res.status} until ${new Date(res.monitor_until).toLocaleDateString()}` });
        threadUrl.value = ''; title.value = '';
        loadMonitors();
      } catch (err) { error.textContent = err.message; }
    });
    return form;
  }

  async function loadMonitors() {
    try {
      const res = await api.get('/scheduler/jobs');
      const rows = (res.jobs || []).filter((j) => j.kind === 'forum_monitor' || j.monitor_until || j.config?.monitor_until || j.config?.thread_url);
      mount(monitors, rows.length ? rows.map((j) => {
        const until = j.monitor_until || j.config?.monitor_until;
        const expired = until && new Date(until) < new Date();
        return h('tr', null,
          h('td', { class: 'url' }, h('strong', null, j.source), ' · ', j.config?.thread_title || j.name,
            h('div', { class: 'muted' }, j.config?.thread_url || j.config?.url || '')),
          h('td', null, badge(expired ? 'expired' : j.enabled ? 'active' : 'paused')),
          h('td', null, until ? [timeEl(until), h('div', { class: 'muted' }, relative(until))] : '—'),
          h('td', { class: 'hide-sm' }, j.last_run ? [badge(j.last_run_status), ' ', timeEl(j.last_run)] : 'never'),
          h('td', { class: 'hide-sm' }, j.next_run ? timeEl(j.next_run) : '—'));
      }) : h('tr', null, h('td', { colspan: 5 }, emptyState('No forum threads monitored', writer ? 'Add a thread above; new images are fetched on every check until the monitor expires.' : 'A user or administrator can add threads.'))));
    } catch (err) {
      mount(monitors, h('tr', null, h('td', { colspan: 5 }, errorState(err, loadMonitors))));
    }
  }

  try {
    const res = await api.get('/platforms');
    if (!ctx.isCurrent()) return;
    const platforms = res.platforms || [];
    mount(list, platforms.length ? platforms.map(card) : emptyState('No platforms', 'This server was built without platform features.'));
  } catch (err) {
    mount(list, errorState(err, () => render(root, ctx)));
  }
  await loadMonitors();
}
