import * as api from '../api.js';
import * as live from '../live.js';
import {
  h, mount, badge, timeEl, skeletonRows, emptyState, errorState, field, selectEl, duration, num,
  toast, toastError, confirmDialog,
} from '../ui.js';

const STATUSES = ['', 'pending', 'downloading', 'paused', 'completed', 'failed'];

/**
 * The live queue. Rows are built once per item and then patched in place:
 * `download_progress` events only record the latest state per item, and one
 * requestAnimationFrame callback writes all pending changes, so 500 items
 * sending several events a second cost one layout per frame.
 */
export default async function render(root, ctx) {
  const writer = api.canWrite();
  const admin = api.isAdmin();
  let status = ctx.params.get('status') || '';
  let page = Math.max(1, Number(ctx.params.get('page')) || 1);
  const perPage = [50, 100, 200, 500].includes(Number(ctx.params.get('per_page'))) ? Number(ctx.params.get('per_page')) : 200;
  const rows = new Map(); // queue id → {tr, refs, item}
  const pendingProgress = new Map(); // queue id → latest progress data
  let frame = 0;

  const counts = h('div', { class: 'tabs', role: 'group', 'aria-label': 'Filter by status' });
  const tbody = h('tbody', null, skeletonRows(7, 6));
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  const summary = h('span', { class: 'muted', 'data-queue-summary': '' }, '\u00a0');

  mount(root,
    h('div', { class: 'page-head' }, h('h1', { id: 'page-title' }, 'Queue'), summary),
    writer ? addForm() : null,
    h('div', { class: 'row between section' }, counts,
      admin ? h('div', { class: 'row' },
        h('button', { class: 'btn small', 'data-clear': 'completed', onclick: () => clear(['completed']) }, 'Clear completed'),
        h('button', { class: 'btn small', 'data-clear': 'failed', onclick: () => clear(['failed']) }, 'Clear failed')) : null),
    h('div', { class: 'table-wrap' }, h('table', { 'data-queue-table': '', class: 'fixed', style: { minWidth: '760px' } },
      h('colgroup', null, h('col', { style: { width: '30%' } }), h('col', { class: 'hide-sm', style: { width: '90px' } }), h('col', { style: { width: '110px' } }),
        h('col', { style: { width: '25%' } }), h('col', { class: 'hide-sm', style: { width: '80px' } }), h('col', { class: 'hide-sm', style: { width: '170px' } }), h('col', { style: { width: '200px' } })),
      h('thead', null, h('tr', null, h('th', null, 'Item'), h('th', { class: 'hide-sm' }, 'Platform'), h('th', null, 'Status'),
        h('th', null, 'Progress'), h('th', { class: 'hide-sm' }, 'Priority'), h('th', { class: 'hide-sm' }, 'Added'), h('th', null, ''))),
      tbody)),
    pager);

  function addForm() {
    const mode = { value: 'url' };
    const url = h('input', { name: 'url', type: 'url', placeholder: 'https://example.com/file.jpg', required: true, style: { width: '100%' } });
    const platform = selectEl('platform', [['auto', 'Automatic (from the URL)']], 'auto');
    // What "auto" will choose for the pasted URL, asked while typing (debounced).
    const recognised = h('p', { class: 'muted', 'data-recognised': '', 'aria-live': 'polite' });
    let recogniseTimer = null;
    let recogniseSeq = 0;
    const source = h('input', { name: 'source', placeholder: 'label (optional)' });
    const contentType = selectEl('content_type', [['', 'from the URL']], '');
    const priority = h('input', { name: 'priority', type: 'number', min: 1, max: 10, value: 5, style: { width: '80px' } });
    const error = h('p', { class: 'form-error', role: 'alert' });
    let platforms = [];
    api.get('/platforms').then((res) => {
      platforms = res.platforms || [];
      mount(platform, [h('option', { value: 'auto' }, 'Automatic (from the URL)')].concat(
        platforms.map((p) => h('option', { value: p.name, disabled: p.enabled === false }, p.display_name || p.name))));
      platform.value = 'auto';
      syncTypes();
    }).catch(() => {});
    function preview() {
      clearTimeout(recogniseTimer);
      const text = url.value.trim();
      const seq = ++recogniseSeq;
      if (platform.value !== 'auto' || !/^https?:\/\/./i.test(text)) {
        recognised.textContent = '';
        return;
      }
      recogniseTimer = setTimeout(async () => {
        try {
          const r = await api.get(`/platforms/recognise?url=${encodeURIComponent(text)}`);
          if (seq !== recogniseSeq) return;
          recognised.textContent = `Will use: ${r.platform} · ${r.source} · ${r.content_type}`;
          recognised.dataset.platform = r.platform;
        } catch (err) {
          if (seq === recogniseSeq) recognised.textContent = err.message;
        }
      }, 300);
    }
    url.addEventListener('input', preview);
    platform.addEventListener('change', preview);
    function syncTypes() {
      if (platform.value === 'auto') {
        mount(contentType, [h('option', { value: '' }, 'from the URL')]);
        return;
      }
      const p = platforms.find((x) => x.name === platform.value);
      const types = p?.content_types?.length ? p.content_types : ['file'];
      mount(contentType, types.map((t) => h('option', { value: t }, t)));
    }
    platform.addEventListener('change', syncTypes);
    const urlField = field('URL', url);
    const tabUrl = h('button', { type: 'button', class: 'btn small', 'aria-pressed': 'true' }, 'A URL');
    const tabSource = h('button', { type: 'button', class: 'btn small', 'aria-pressed': 'false' }, 'A source');
    const sourceLabel = h('label', { for: '' });
    const setMode = (m) => {
      mode.value = m;
      tabUrl.setAttribute('aria-pressed', String(m === 'url'));
      tabSource.setAttribute('aria-pressed', String(m === 'source'));
      url.required = m === 'url';
      source.required = m === 'source';
      source.placeholder = m === 'url' ? 'label (optional)' : 'username or forum name';
      urlField.querySelector('label').textContent = m === 'url' ? 'URL' : 'URL (optional: thread or profile)';
      if (m === 'url') platform.value = 'auto';
      if (m === 'source' && platform.value === 'auto') platform.value = platforms.find((p) => p.enabled !== false)?.name || 'direct';
      preview();
      syncTypes();
    };
    tabUrl.addEventListener('click', () => setMode('url'));
    tabSource.addEventListener('click', () => setMode('source'));
    void sourceLabel;
    const form = h('form', { class: 'card stack', 'aria-label': 'Add to queue', 'data-add-form': '' },
      h('div', { class: 'row between' }, h('h2', { style: { margin: 0 } }, 'Add to the queue'),
        h('div', { class: 'tabs', style: { margin: 0 } }, tabUrl, tabSource)),
      h('div', { class: 'form-grid' }, h('div', { style: { gridColumn: '1 / -1' } }, urlField, recognised),
        field('Platform', platform), field('Source', source), field('Content', contentType), field('Priority (1 = first)', priority),
        h('button', { class: 'btn primary', type: 'submit' }, 'Add')),
      error);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.textContent = '';
      const body = { platform: platform.value, priority: Number(priority.value) || 5 };
      if (contentType.value) body.content_type = contentType.value;
      if (url.value.trim()) body.url = url.value.trim();
      if (source.value.trim()) body.source = source.value.trim();
      try {
        const item = await api.post('/queue', body);
        toast({ level: 'success', title: 'Queued', message: `${item.platform}/${item.source} #${item.id}` });
        url.value = '';
        recognised.textContent = '';
        upsert(item, true);
      } catch (err) {
        error.textContent = err.message;
      }
    });
    return form;
  }

  function progressText(p) {
    const parts = [];
    if (p.items_total) parts.push(`${num(p.items_downloaded)}/${num(p.items_total)} items`);
    else if (p.items_downloaded) parts.push(`${num(p.items_downloaded)} items`);
    if (p.speed_mbps) parts.push(`${p.speed_mbps.toFixed(2)} MB/s`);
    if (p.eta_seconds !== null && p.eta_seconds !== undefined && p.status === 'downloading') parts.push(`ETA ${duration(p.eta_seconds)}`);
    return parts.join(' · ') || '\u00a0';
  }

  function setProgress(refs, percent, state) {
    refs.bar.style.transform = `scaleX(${Math.max(0, Math.min(100, percent)) / 100})`;
    refs.progress.setAttribute('aria-valuenow', percent);
    refs.percent.textContent = `${Math.round(percent)}%`;
    refs.progress.classList.toggle('done', state === 'completed');
    refs.progress.classList.toggle('failed', state === 'failed');
  }

  function actions(item) {
    const out = [];
    if (!writer) return out;
    if (item.status === 'pending' || item.status === 'downloading') out.push(h('button', { class: 'btn small', 'data-act': 'pause', onclick: () => update(item.id, { status: 'paused' }) }, 'Pause'));
    if (item.status === 'paused') out.push(h('button', { class: 'btn small', 'data-act': 'resume', onclick: () => update(item.id, { status: 'pending' }) }, 'Resume'));
    if (item.status === 'failed' || item.status === 'completed') out.push(h('button', { class: 'btn small', 'data-act': 'retry', onclick: () => retry(item.id) }, 'Retry'));
    // Removing is a deletion: admins only.
    if (admin) out.push(h('button', { class: 'btn small danger', 'data-act': 'remove', 'data-action': 'delete', onclick: () => removeItem(item) }, 'Remove'));
    return out;
  }

  function buildRow(item) {
    const progress = h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-label': `Progress of ${item.url}` }, h('div', { class: 'bar' }));
    const refs = {
      status: h('td'), progress, bar: progress.firstChild, percent: h('span'), meta: h('span', { class: 'progress-meta' }),
      priority: h('select', { 'aria-label': 'Priority', disabled: !writer, onchange: (e) => update(item.id, { priority: Number(e.target.value) }) },
        Array.from({ length: 10 }, (_, i) => h('option', { value: i + 1 }, i + 1))),
      actions: h('td', { class: 'actions' }),
      error: h('div', { class: 'form-error' }),
    };
    const tr = h('tr', { 'data-queue-id': item.id },
      h('td', { class: 'url' }, h('div', { title: item.url }, item.url), h('div', { class: 'muted' }, item.source, ' · #', item.id), refs.error),
      h('td', { class: 'hide-sm' }, item.platform),
      refs.status,
      h('td', null, h('div', { class: 'cell-box' }, progress, h('div', { class: 'row between', style: { flexWrap: 'nowrap' } }, refs.meta, refs.percent))),
      h('td', { class: 'hide-sm' }, refs.priority),
      h('td', { class: 'hide-sm muted', style: { whiteSpace: 'nowrap', overflow: 'hidden', textOverflow: 'ellipsis' } }, timeEl(item.created_date)),
      refs.actions);
    const entry = { tr, refs, item: { ...item } };
    applyItem(entry, item);
    visibility.observe(tr);
    return entry;
  }

  function applyItem(entry, item) {
    Object.assign(entry.item, item);
    const it = entry.item;
    mount(entry.refs.status, badge(it.status));
    entry.refs.priority.value = String(it.priority ?? 5);
    entry.refs.error.textContent = it.error_message || '';
    mount(entry.refs.actions, actions(it));
    const percent = it.status === 'completed' ? 100 : (it.progress ?? 0);
    setProgress(entry.refs, percent, it.status);
    entry.tr.dataset.status = it.status;
  }

  function matchesFilter(item) {
    return !status || item.status === status;
  }

  /** Adds or updates a row from a full item or a queue_updated item. */
  function upsert(item, prepend = false) {
    const entry = rows.get(item.id);
    if (entry) {
      applyItem(entry, item);
      return;
    }
    if (!matchesFilter(item) || page !== 1) return;
    const created = buildRow(item);
    rows.set(item.id, created);
    tbody.querySelector('.empty')?.closest('tr')?.remove();
    if (prepend) tbody.prepend(created.tr); else tbody.append(created.tr);
  }

  // Only rows on screen are redrawn; the others keep their latest state
  // and are drawn when they scroll into view.
  const onScreen = new Set();
  const offScreenState = new Map();
  const visibility = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const id = Number(entry.target.dataset.queueId);
      if (entry.isIntersecting) {
        onScreen.add(id);
        const p = offScreenState.get(id);
        if (p) { offScreenState.delete(id); pendingProgress.set(id, p); if (!frame) frame = requestAnimationFrame(flushProgress); }
      } else {
        onScreen.delete(id);
      }
    }
  }, { rootMargin: '200px 0px' });
  ctx.onCleanup(() => visibility.disconnect());

  function drawProgress(entry, p) {
    if (entry.item.status !== p.status) {
      entry.item.status = p.status;
      entry.tr.dataset.status = p.status;
      mount(entry.refs.status, badge(p.status));
      mount(entry.refs.actions, actions(entry.item));
    }
    setProgress(entry.refs, p.progress, p.status);
    entry.refs.meta.textContent = progressText(p);
  }

  function flushProgress() {
    frame = 0;
    for (const [id, p] of pendingProgress) {
      const entry = rows.get(id);
      if (!entry) continue;
      entry.item.progress = p.progress;
      if (onScreen.has(id)) drawProgress(entry, p);
      else offScreenState.set(id, p);
    }
    pendingProgress.clear();
  }

  ctx.onCleanup(live.on('download_progress', (p) => {
    pendingProgress.set(p.queue_id, p);
    if (!frame) frame = requestAnimationFrame(flushProgress);
  }));
  ctx.onCleanup(() => cancelAnimationFrame(frame));
  ctx.onCleanup(live.on('download_completed', (d) => {
    pendingProgress.delete(d.queue_id);
    offScreenState.delete(d.queue_id);
    const entry = rows.get(d.queue_id);
    if (!entry) return;
    applyItem(entry, { status: d.status, progress: d.status === 'completed' ? 100 : entry.item.progress, error_message: d.error_message });
    entry.refs.meta.textContent = `${num(d.items_downloaded)} item(s)${d.items_failed ? `, ${d.items_failed} failed` : ''} in ${duration(d.duration_seconds)}`;
    loadCountsSoon();
  }));
  ctx.onCleanup(live.on('queue_updated', (u) => {
    if (!u.item) return;
    if (u.action === 'removed' || u.action === 'cleared') {
      const gone = rows.get(u.item.id);
      if (gone) { visibility.unobserve(gone.tr); gone.tr.remove(); }
      rows.delete(u.item.id);
    } else {
      upsert(u.item, u.action === 'added');
    }
    loadCountsSoon();
  }));
  // After a reconnect, events may have been missed: reload.
  ctx.onCleanup(live.on('connected', () => load()));

  let countsTimer = null;
  const loadCountsSoon = () => { if (!countsTimer) countsTimer = setTimeout(() => { countsTimer = null; loadCounts(); }, 1000); };
  ctx.onCleanup(() => clearTimeout(countsTimer));

  async function loadCounts() {
    try {
      const s = await api.get('/queue/stats');
      if (!ctx.isCurrent()) return;
      renderTabs(s);
      mount(summary, `${num(s.active_workers)} worker(s) active`, s.estimated_completion ? [' · done ', timeEl(s.estimated_completion)] : null);
    } catch { /* the list shows errors */ }
  }

  function renderTabs(s = {}) {
    mount(counts, STATUSES.map((st) => h('button', {
      type: 'button', class: 'btn small', 'aria-pressed': String(st === status), 'data-status-tab': st || 'all',
      onclick: () => { status = st; page = 1; load(); },
    }, st || 'all', s[st || 'total'] !== undefined ? ` (${num(s[st || 'total'])})` : '')));
  }

  async function update(id, body) {
    try {
      const res = await api.patch(`/queue/${id}`, body);
      const entry = rows.get(id);
      if (entry) applyItem(entry, res);
    } catch (err) { toastError(err, 'Could not update the item'); }
  }

  async function retry(id) {
    try {
      const res = await api.post(`/queue/${id}/retry`, {});
      const entry = rows.get(id);
      if (entry) applyItem(entry, { ...res, progress: 0, error_message: null });
    } catch (err) { toastError(err, 'Could not retry'); }
  }

  async function removeItem(item) {
    if (!await confirmDialog('Remove from queue', `Remove "${item.url}" from the queue? Files already downloaded stay.`, { confirmLabel: 'Remove', danger: true })) return;
    try {
      await api.del(`/queue/${item.id}`);
      rows.get(item.id)?.tr.remove();
      rows.delete(item.id);
      loadCounts();
    } catch (err) { toastError(err, 'Could not remove'); }
  }

  async function clear(statuses) {
    try {
      const res = await api.post('/queue/clear', { status: statuses });
      toast({ level: 'success', title: `Cleared ${num(res.deleted)} item(s)` });
      load();
    } catch (err) { toastError(err, 'Could not clear'); }
  }

  async function load() {
    ctx.setParams({ status, page: page > 1 ? page : '', per_page: perPage !== 200 ? perPage : '' });
    renderTabs();
    try {
      // The API pages by at most 200; a longer view is fetched in parts of 100.
      const part = perPage > 200 ? 100 : perPage;
      const parts = perPage / part;
      const responses = await Promise.all(Array.from({ length: parts }, (_, k) =>
        api.send('GET', '/queue', { params: { status, page: (page - 1) * parts + k + 1, per_page: part } })));
      const { body, headers } = responses[0];
      body.items = responses.flatMap((r) => r.body.items || []);
      if (!ctx.isCurrent()) return;
      for (const entry of rows.values()) visibility.unobserve(entry.tr);
      rows.clear();
      offScreenState.clear();
      const items = body.items || [];
      if (!items.length) {
        mount(tbody, h('tr', null, h('td', { colspan: 7 }, status
          ? emptyState(`No ${status} items`, 'Pick another status above, or add a URL.')
          : emptyState('The queue is empty', writer ? 'Add a URL above, or create a schedule on the Scheduler page.' : 'Nothing is waiting or downloading right now.'))));
      } else {
        const built = items.map(buildRow);
        for (const entry of built) rows.set(entry.item.id, entry);
        mount(tbody, built.map((e) => e.tr));
      }
      renderTabs(body);
      const total = Number(headers.get('X-Total-Count')) || (status ? body[status] : body.total) || items.length;
      const pages = Math.max(1, Math.ceil(total / perPage));
      mount(pager, pages > 1 ? [
        h('button', { class: 'btn small', disabled: page <= 1, onclick: () => { page -= 1; load(); } }, '‹ Previous'),
        h('span', null, `Page ${page} of ${pages}`),
        h('button', { class: 'btn small', disabled: page >= pages, onclick: () => { page += 1; load(); } }, 'Next ›')] : []);
      loadCounts();
    } catch (err) {
      mount(tbody, h('tr', null, h('td', { colspan: 7 }, errorState(err, load))));
    }
  }
  await load();
}
