import * as api from '../api.js';
import * as live from '../live.js';
import {
  h, mount, skeletonRows, emptyState, errorState, field, selectEl, debounce, toast, toastError, saveBlob, confirmDialog,
} from '../ui.js';

const LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR'];
const KEYS = ['level', 'module', 'search', 'date_from', 'date_to', 'limit'];

export default async function render(root, ctx) {
  const admin = api.isAdmin();
  const state = Object.fromEntries(KEYS.map((k) => [k, ctx.params.get(k) || '']));
  state.limit ||= '100';
  const inputs = {
    level: selectEl('level', [['', 'All levels'], ...LEVELS], state.level),
    module: h('input', { name: 'module', value: state.module, placeholder: 'Scheduler, Instagram…', type: 'search' }),
    search: h('input', { name: 'search', value: state.search, placeholder: 'text in message', type: 'search' }),
    date_from: h('input', { name: 'date_from', type: 'datetime-local', value: state.date_from }),
    date_to: h('input', { name: 'date_to', type: 'datetime-local', value: state.date_to }),
    limit: selectEl('limit', ['100', '250', '500', '1000'], state.limit),
  };
  const tail = h('input', { type: 'checkbox', checked: ctx.params.get('tail') !== '0', 'data-tail': '' });
  const tbody = h('tbody', null, skeletonRows(4, 10));
  const count = h('span', { class: 'muted' }, '\u00a0');
  const fileDate = h('input', { type: 'date', value: new Date().toISOString().slice(0, 10), 'aria-label': 'Log date' });
  const fileFormat = selectEl('format', [['text', 'text'], ['json', 'JSON']], 'text', { 'aria-label': 'Log format' });

  mount(root,
    h('div', { class: 'page-head' }, h('h1', { id: 'page-title' }, 'Logs'), count),
    h('form', { class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault() },
      field('Level', inputs.level), field('Module', inputs.module), field('Search', inputs.search),
      field('From', inputs.date_from), field('To', inputs.date_to), field('Show', inputs.limit),
      h('label', { class: 'check' }, tail, 'Live tail')),
    h('div', { class: 'row between', style: { marginBottom: '12px' } },
      h('div', { class: 'row' }, fileDate, fileFormat, h('button', { class: 'btn small', onclick: download }, 'Download log file')),
      admin ? h('button', { class: 'btn small danger', 'data-action': 'delete', onclick: clearOld }, 'Delete old logs…') : null),
    h('div', { class: 'table-wrap' }, h('table', { class: 'log-table' },
      h('thead', null, h('tr', null, h('th', { style: { width: '190px' } }, 'Time'), h('th', { style: { width: '90px' } }, 'Level'),
        h('th', { class: 'hide-sm', style: { width: '120px' } }, 'Module'), h('th', null, 'Message'))), tbody)));

  const apply = () => { for (const k of KEYS) state[k] = inputs[k].value.trim(); load(); };
  for (const k of ['level', 'date_from', 'date_to', 'limit']) inputs[k].addEventListener('change', apply);
  for (const k of ['module', 'search']) inputs[k].addEventListener('input', debounce(apply, 350));
  tail.addEventListener('change', () => ctx.setParams({ ...state, tail: tail.checked ? '' : '0' }));

  function row(entry, ts) {
    const meta = entry.metadata && Object.keys(entry.metadata).length ? JSON.stringify(entry.metadata) : '';
    return h('tr', null, h('td', null, new Date(entry.timestamp || ts).toLocaleString()),
      h('td', { class: `log-level-${entry.level}` }, entry.level), h('td', { class: 'hide-sm' }, entry.module),
      h('td', { class: 'msg', title: meta }, entry.message, meta ? h('div', { class: 'muted' }, meta) : null));
  }

  function matches(entry) {
    if (state.level && entry.level !== state.level) return false;
    if (state.module && !String(entry.module).toLowerCase().includes(state.module.toLowerCase())) return false;
    if (state.search && !String(entry.message).toLowerCase().includes(state.search.toLowerCase())) return false;
    return !state.date_to;
  }

  const toIso = (local) => (local ? new Date(local).toISOString() : '');

  async function load() {
    ctx.setParams({ ...state, limit: state.limit !== '100' ? state.limit : '', tail: tail.checked ? '' : '0' });
    try {
      const res = await api.get('/logs', { level: state.level, module: state.module, search: state.search,
        date_from: toIso(state.date_from), date_to: toIso(state.date_to), limit: state.limit });
      if (!ctx.isCurrent()) return;
      const logs = res.logs || [];
      mount(count, `${(res.filtered ?? logs.length).toLocaleString()} shown of ${(res.total ?? logs.length).toLocaleString()}`);
      mount(tbody, logs.length ? logs.map((e) => row(e)) : h('tr', null, h('td', { colspan: 4 },
        emptyState('No log entries match', 'Clear the filters, or wait: with live tail on, new entries appear here.'))));
    } catch (err) {
      mount(tbody, h('tr', null, h('td', { colspan: 4 }, errorState(err, load))));
    }
  }

  // Live tail: newest on top, capped at the chosen limit.
  ctx.onCleanup(live.on('log', (entry, ev) => {
    if (!tail.checked || !matches(entry)) return;
    tbody.querySelector('.empty')?.closest('tr')?.remove();
    tbody.prepend(row(entry, ev.timestamp));
    const limit = Number(state.limit) || 100;
    while (tbody.children.length > limit) tbody.lastElementChild.remove();
  }));

  async function download() {
    try {
      const res = await api.send('GET', '/logs/download', { params: { date: fileDate.value, format: fileFormat.value }, raw: true });
      const disposition = res.headers.get('Content-Disposition') || '';
      const name = /filename="?([^";]+)"?/.exec(disposition)?.[1] || `mediadl_${fileDate.value.replaceAll('-', '')}.${fileFormat.value === 'json' ? 'json' : 'log'}`;
      saveBlob(await res.blob(), name);
    } catch (err) { toastError(err, 'Could not download the log'); }
  }

  async function clearOld() {
    const days = h('input', { type: 'number', name: 'days', min: 0, value: 30, style: { width: '100px' } });
    const ok = await confirmDialog('Delete old logs', 'Delete stored log entries older than:', { confirmLabel: 'Delete', danger: true,
      extra: h('label', { class: 'check' }, days, 'days') });
    if (!ok) return;
    try {
      const res = await api.del('/logs', { older_than_days: ok.days });
      toast({ level: 'success', title: 'Old logs deleted', message: `${res.deleted_files ?? 0} deleted` });
      load();
    } catch (err) { toastError(err); }
  }

  await load();
}
