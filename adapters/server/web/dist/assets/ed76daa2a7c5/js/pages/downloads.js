import * as api from '../api.js';
import {
  h, mount, bytes, badge, timeEl, skeletonRows, emptyState, errorState, field, selectEl,
  debounce, modal, confirmDialog, toast, toastError,
} from '../ui.js';

const IMAGE = /\.(jpe?g|png|gif|webp|avif|bmp|svg)$/i;
const VIDEO = /\.(mp4|webm|mov|m4v|mkv|ogv)$/i;
const FILTERS = ['platform', 'source', 'status', 'date_from', 'date_to', 'search'];

/** Loads thumbnails only when their row scrolls into view. */
const thumbObserver = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    const img = entry.target;
    thumbObserver.unobserve(img);
    const none = () => img.replaceWith(h('span', { class: 'thumb-none' }, 'no preview'));
    img.addEventListener('error', none, { once: true });
    api.mediaLinks(Number(img.dataset.thumbnail)).then((links) => { img.src = links.thumbnail_url; }).catch(none);
  }
}, { rootMargin: '200px' });

/** Opens the image lightbox or the video player for a download. */
export async function preview(d) {
  const name = d.filename || d.file_path || '';
  const isVideo = VIDEO.test(name);
  const body = h('div', { class: 'lightbox' }, h('p', { class: 'muted' }, 'Loading…'));
  modal(name || `Download ${d.id}`, body, { wide: true });
  const filePath = `/downloads/${d.id}/file`;
  try {
    if (isVideo) {
      // A signed link: the <video> streams with Range requests and cannot
      // send an Authorization header.
      const { file_url: src } = await api.mediaLinks(d.id);
      mount(body, h('video', { controls: true, preload: 'metadata', src }));
    } else if (IMAGE.test(name) || !name) {
      const { file_url: src } = await api.mediaLinks(d.id);
      mount(body, h('img', { alt: name, src }));
    } else {
      mount(body, h('p', null, 'No preview for this file type. '),
        h('button', { class: 'btn', onclick: async () => {
          const res = await api.send('GET', filePath, { raw: true });
          const a = h('a', { href: URL.createObjectURL(await res.blob()), download: name });
          a.click();
        } }, 'Download the file'));
    }
    mount(body, body.firstChild, h('dl', { class: 'kv', style: { marginTop: '12px' } },
      h('dt', null, 'URL'), h('dd', null, h('a', { href: d.url, target: '_blank', rel: 'noreferrer noopener' }, d.url)),
      h('dt', null, 'Size'), h('dd', null, bytes(d.file_size)),
      h('dt', null, 'Posted'), h('dd', null, timeEl(d.post_date)),
      h('dt', null, 'Downloaded'), h('dd', null, timeEl(d.download_date)),
      h('dt', null, 'Path'), h('dd', { class: 'mono' }, d.file_path || '—')));
  } catch (err) {
    mount(body, h('p', { class: 'form-error' }, `The file could not be loaded: ${err.message}. It may have been deleted from disk.`));
  }
}

export default async function render(root, ctx) {
  const admin = api.isAdmin();
  const writer = api.canWrite();
  const state = Object.fromEntries(FILTERS.map((k) => [k, ctx.params.get(k) || '']));
  state.page = Math.max(1, Number(ctx.params.get('page')) || 1);
  state.per_page = Number(ctx.params.get('per_page')) || 50;
  const selected = new Set();

  const inputs = {
    platform: selectEl('platform', [['', 'All platforms']], state.platform),
    source: h('input', { name: 'source', value: state.source, placeholder: 'username or forum', type: 'search' }),
    status: selectEl('status', [['', 'Any status'], 'completed', 'failed'], state.status),
    date_from: h('input', { name: 'date_from', type: 'date', value: state.date_from }),
    date_to: h('input', { name: 'date_to', type: 'date', value: state.date_to }),
    search: h('input', { name: 'search', type: 'search', value: state.search, placeholder: 'URL or file name' }),
  };
  const filters = h('form', { class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault() },
    field('Platform', inputs.platform), field('Source', inputs.source), field('Status', inputs.status),
    field('From', inputs.date_from), field('To', inputs.date_to), field('Search', inputs.search),
    h('button', { type: 'button', class: 'btn', onclick: () => {
      for (const k of FILTERS) { inputs[k].value = ''; state[k] = ''; }
      state.page = 1; load();
    } }, 'Clear filters'));
  const apply = () => {
    for (const k of FILTERS) state[k] = inputs[k].value.trim();
    state.page = 1;
    load();
  };
  for (const k of ['platform', 'status', 'date_from', 'date_to']) inputs[k].addEventListener('change', apply);
  for (const k of ['source', 'search']) inputs[k].addEventListener('input', debounce(apply, 350));

  const selectAll = h('input', { type: 'checkbox', 'aria-label': 'Select all on this page' });
  const tbody = h('tbody', null, skeletonRows(writer ? 8 : 7, 8));
  const table = h('div', { class: 'table-wrap' }, h('table', null,
    h('thead', null, h('tr', null, writer ? h('th', { style: { width: '36px' } }, selectAll) : null,
      h('th', { style: { width: '84px' } }, 'Preview'), h('th', null, 'File'), h('th', { class: 'hide-sm' }, 'Platform / source'),
      h('th', { class: 'hide-sm' }, 'Size'), h('th', null, 'Status'), h('th', { class: 'hide-sm' }, 'Downloaded'), h('th', null, ''))),
    tbody));
  const count = h('span', { class: 'muted' });
  const deleteFiles = h('input', { type: 'checkbox', name: 'delete_files', id: 'bulk-delete-files' });
  const bulkbar = h('div', { class: 'bulkbar', 'aria-label': 'Bulk actions' },
    h('span', { 'data-selected': '' }, 'None selected'),
    writer ? h('button', { class: 'btn small', 'data-bulk': 'retry', onclick: () => bulk('retry') }, 'Retry') : null,
    writer ? h('button', { class: 'btn small', 'data-bulk': 'mark_upgraded', onclick: () => bulk('mark_upgraded') }, 'Mark upgraded') : null,
    admin ? h('button', { class: 'btn small danger', 'data-action': 'delete', 'data-bulk': 'delete', onclick: () => bulk('delete') }, 'Delete') : null,
    admin ? h('label', { class: 'check' }, deleteFiles, 'and their files') : null);
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });

  mount(root,
    h('div', { class: 'page-head' }, h('h1', { id: 'page-title' }, 'Downloads'), count),
    filters, writer ? bulkbar : null, table, pager);

  api.get('/platforms').then((res) => {
    for (const p of res.platforms || []) inputs.platform.append(h('option', { value: p.name, selected: p.name === state.platform }, p.display_name || p.name));
  }).catch(() => {});

  function updateBulk() {
    mount(bulkbar.querySelector('[data-selected]'), selected.size ? `${selected.size} selected` : 'None selected');
    for (const b of bulkbar.querySelectorAll('button')) b.disabled = selected.size === 0;
    const boxes = tbody.querySelectorAll('input[type=checkbox]');
    selectAll.checked = boxes.length > 0 && [...boxes].every((b) => b.checked);
  }
  selectAll.addEventListener('change', () => {
    for (const box of tbody.querySelectorAll('input[type=checkbox]')) {
      box.checked = selectAll.checked;
      if (box.checked) selected.add(Number(box.value)); else selected.delete(Number(box.value));
    }
    updateBulk();
  });

  async function bulk(action) {
    const ids = [...selected];
    if (!ids.length) return;
    if (action === 'delete') {
      const ok = await confirmDialog('Delete downloads', `Delete ${ids.length} download record(s)${deleteFiles.checked ? ' and their files' : ''}? This cannot be undone.`, { confirmLabel: 'Delete', danger: true });
      if (!ok) return;
    }
    try {
      const res = await api.post('/downloads/bulk', { action, ids, delete_files: deleteFiles.checked });
      toast({ level: res.failed ? 'warning' : 'success', title: `${action.replace('_', ' ')}: ${res.success} done`, message: res.failed ? `${res.failed} failed: ${(res.errors || []).map((e) => e.detail || e.error || JSON.stringify(e)).join('; ')}` : '' });
      selected.clear();
      load();
    } catch (err) { toastError(err); }
  }

  async function remove(d) {
    const box = h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'delete_file' }), 'Also delete the file from disk');
    const ok = await confirmDialog('Delete download', `Delete the record of "${d.filename || d.url}"?`, { confirmLabel: 'Delete', danger: true, extra: box });
    if (!ok) return;
    try {
      await api.del(`/downloads/${d.id}`, { delete_file: ok.delete_file === 'on' ? 'true' : 'false' });
      toast({ level: 'success', title: 'Deleted', message: d.filename || d.url });
      load();
    } catch (err) { toastError(err); }
  }

  function row(d) {
    const hasFile = d.status === 'completed' && d.file_path !== null;
    const thumb = hasFile
      ? h('button', { class: 'thumb-btn', 'aria-label': `Preview ${d.filename}`, onclick: () => preview(d) },
        (() => { const img = h('img', { class: 'thumb', alt: '', width: 64, height: 64, 'data-thumbnail': d.id }); thumbObserver.observe(img); return img; })())
      : h('span', { class: 'thumb-none' }, d.status === 'failed' ? 'failed' : '—');
    const box = writer ? h('input', { type: 'checkbox', value: d.id, 'aria-label': `Select ${d.filename || d.url}`, checked: selected.has(d.id),
      onchange: (e) => { if (e.target.checked) selected.add(d.id); else selected.delete(d.id); updateBulk(); } }) : null;
    return h('tr', { 'data-id': d.id },
      writer ? h('td', null, box) : null,
      h('td', null, thumb),
      h('td', { class: 'url' }, h('div', { title: d.filename }, d.filename || '—'),
        h('a', { class: 'muted', href: d.url, target: '_blank', rel: 'noreferrer noopener', title: d.url }, d.url),
        d.error_message ? h('div', { class: 'form-error' }, d.error_message) : null),
      h('td', { class: 'hide-sm' }, d.platform, h('br'), h('a', { href: `/downloads?source=${encodeURIComponent(d.source)}`, 'data-link': '' }, d.source)),
      h('td', { class: 'hide-sm' }, bytes(d.file_size)),
      h('td', null, badge(d.status), d.metadata?.upgraded ? h('span', { class: 'badge' }, 'upgraded') : null),
      h('td', { class: 'hide-sm' }, timeEl(d.download_date)),
      h('td', { class: 'actions' },
        hasFile ? h('button', { class: 'btn small', onclick: () => preview(d) }, 'View') : null,
        admin ? h('button', { class: 'btn small danger', 'data-action': 'delete', onclick: () => remove(d) }, 'Delete') : null));
  }

  async function load() {
    ctx.setParams({ ...Object.fromEntries(FILTERS.map((k) => [k, state[k]])), page: state.page > 1 ? state.page : '', per_page: state.per_page !== 50 ? state.per_page : '' });
    tbody.setAttribute('aria-busy', 'true');
    try {
      const params = { page: state.page, per_page: state.per_page };
      for (const k of FILTERS) if (state[k]) params[k] = state[k];
      const res = await api.get('/downloads', params);
      if (!ctx.isCurrent()) return;
      const items = res.items || [];
      mount(count, `${(res.total ?? items.length).toLocaleString()} download(s)`);
      if (!items.length) {
        const filtered = FILTERS.some((k) => state[k]);
        mount(tbody, h('tr', null, h('td', { colspan: 8 }, filtered
          ? emptyState('No downloads match these filters', 'Widen the date range or clear the filters.')
          : emptyState('No downloads yet', 'Add a URL on the Queue page, or create a schedule; finished files appear here.',
            h('a', { class: 'btn primary', href: '/queue', 'data-link': '' }, 'Go to the queue')))));
      } else {
        mount(tbody, items.map(row));
      }
      const pages = res.total_pages || Math.max(1, Math.ceil((res.total || 0) / state.per_page));
      mount(pager,
        h('button', { class: 'btn small', disabled: state.page <= 1, onclick: () => { state.page -= 1; load(); } }, '‹ Previous'),
        h('span', null, `Page ${state.page} of ${pages}`),
        h('button', { class: 'btn small', disabled: state.page >= pages, onclick: () => { state.page += 1; load(); } }, 'Next ›'),
        selectEl('per_page', [25, 50, 100, 200].map((n) => [n, `${n} per page`]), state.per_page, {
          'aria-label': 'Items per page', onchange: (e) => { state.per_page = Number(e.target.value); state.page = 1; load(); } }));
      updateBulk();
    } catch (err) {
      mount(tbody, h('tr', null, h('td', { colspan: 8 }, errorState(err, load))));
    } finally {
      tbody.removeAttribute('aria-busy');
    }
  }
  await load();
}
