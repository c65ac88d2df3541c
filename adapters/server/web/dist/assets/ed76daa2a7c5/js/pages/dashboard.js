import * as api from '../api.js';
import * as live from '../live.js';
import { timelineChart, platformBars } from '../charts.js';
import { h, mount, num, pct, bytes, duration, badge, timeEl, errorState, emptyState } from '../ui.js';

function stat(label, id) {
  return h('div', { class: 'card stat' }, h('div', { class: 'label' }, label),
    h('div', { class: 'value', 'data-stat': id }, h('span', { class: 'skeleton' })),
    h('div', { class: 'sub', 'data-sub': id }, '\u00a0'));
}

export default async function render(root, ctx) {
  const cards = h('div', { class: 'grid cards' },
    stat('Today', 'today'), stat('This week', 'week'), stat('This month', 'month'), stat('All time', 'total'),
    stat('Queue', 'queue'), stat('Success rate', 'success'), stat('Next scheduled task', 'next'));
  const storage = h('div', { class: 'card stack', style: { minHeight: '108px' } },
    h('div', { class: 'row between' }, h('strong', null, 'Storage'), h('span', { class: 'muted', 'data-storage-text': '' }, '\u00a0')),
    h('div', { class: 'progress gauge', role: 'meter', 'aria-label': 'Storage used', 'aria-valuemin': 0, 'aria-valuemax': 100 },
      h('div', { class: 'bar' })));
  const platformStatus = h('div', { class: 'card', style: { minHeight: '108px' } }, h('h2', null, 'Platforms'), h('div', { 'data-platform-status': '' }, h('span', { class: 'skeleton' })));
  const timeline = h('div', { class: 'card' }, h('div', { class: 'row between' }, h('h2', null, 'Downloads, last 30 days'),
    h('span', { class: 'muted' }, 'blue: completed · red: failed')), h('div', { 'data-timeline': '', style: { height: '220px' } }));
  const breakdown = h('div', { class: 'card' }, h('h2', null, 'By platform'), h('div', { 'data-breakdown': '', style: { minHeight: '220px' } }));
  const activity = h('ul', { class: 'activity', 'aria-live': 'polite', 'aria-label': 'Recent activity' });
  mount(root,
    h('div', { class: 'page-head' }, h('h1', { id: 'page-title' }, 'Dashboard')),
    cards,
    h('div', { class: 'grid cols-2 section' }, storage, platformStatus),
    h('div', { class: 'grid cols-2 section' }, timeline, breakdown),
    h('div', { class: 'card section' }, h('h2', null, 'Recent activity'), activity));

  const set = (id, value, sub) => {
    mount(root.querySelector(`[data-stat="${id}"]`), value);
    if (sub !== undefined) mount(root.querySelector(`[data-sub="${id}"]`), sub || '\u00a0');
  };
  let nextAt = null;

  async function loadOverview() {
    const o = await api.get('/stats/overview');
    set('today', num(o.downloads?.today));
    set('week', num(o.downloads?.week));
    set('month', num(o.downloads?.month));
    set('total', num(o.downloads?.total));
    set('queue', num(o.queue?.pending), `${num(o.queue?.downloading)} downloading · ${num(o.queue?.failed)} failed`);
    set('success', pct(o.success_rate?.today), `week ${pct(o.success_rate?.week)} · month ${pct(o.success_rate?.month)}`);
    const s = o.storage || {};
    const percent = Math.min(100, s.percent ?? 0);
    const gauge = storage.querySelector('.progress');
    gauge.setAttribute('aria-valuenow', percent);
    gauge.querySelector('.bar').style.transform = `scaleX(${percent / 100})`;
    gauge.classList.toggle('failed', percent >= 90);
    mount(storage.querySelector('[data-storage-text]'), s.limit_bytes
      ? `${s.used_human || bytes(s.used_bytes)} of ${s.limit_human || bytes(s.limit_bytes)} (${pct(s.percent)})`
      : `${s.used_human || bytes(s.used_bytes)} used · no limit`);
    const platforms = Object.entries(o.platforms || {});
    mount(platformStatus.querySelector('[data-platform-status]'), platforms.length
      ? h('dl', { class: 'kv' }, platforms.map(([name, p]) => [h('dt', null, name),
        h('dd', null, badge(p.status), ` ${num(p.downloads_today)} today`)]))
      : emptyState('No platforms', 'Enable a platform under Platforms & sources.'));
    const next = o.next_scheduled_task;
    nextAt = next ? Date.now() + (next.in_seconds ?? (new Date(next.scheduled_time) - Date.now()) / 1000) * 1000 : null;
    set('next', next ? h('span', { class: 'countdown', 'data-countdown': '' }, duration((nextAt - Date.now()) / 1000)) : '—',
      next ? h('span', null, next.job_name || next.job_id, ' · ', timeEl(next.scheduled_time)) : h('a', { href: '/scheduler', 'data-link': '' }, 'Create a schedule'));
  }

  async function loadCharts() {
    const [tl, pl] = await Promise.all([
      api.get('/stats/timeline', { period: 'month', group_by: 'day' }),
      api.get('/stats/platforms'),
    ]);
    // One bar per day of the last 30, zero where the server sent no bucket.
    const byDay = new Map();
    for (const p of tl.timeline || []) {
      const day = String(p.timestamp || p.date || '').slice(0, 10);
      const prev = byDay.get(day) || { success: 0, failed: 0 };
      byDay.set(day, { success: prev.success + (p.success ?? p.downloads ?? p.count ?? 0), failed: prev.failed + (p.failed ?? 0) });
    }
    const points = Array.from({ length: 30 }, (_, i) => {
      const day = new Date(Date.now() - (29 - i) * 86400_000).toISOString().slice(0, 10);
      return { label: day.slice(5), ...(byDay.get(day) || { success: 0, failed: 0 }) };
    });
    mount(timeline.querySelector('[data-timeline]'), points.some((p) => p.success + p.failed > 0)
      ? timelineChart(points)
      : emptyState('No downloads in the last 30 days', 'Queue a URL on the Queue page or create a schedule.'));
    const rows = pl.platforms || [];
    mount(breakdown.querySelector('[data-breakdown]'), rows.length
      ? platformBars(rows) : emptyState('Nothing downloaded yet', 'Per-platform totals appear after the first download.'));
  }

  function addActivity(kind, textValue, when = new Date().toISOString()) {
    activity.prepend(h('li', null, timeEl(when), badge(kind), h('span', null, textValue)));
    while (activity.children.length > 50) activity.lastElementChild.remove();
    activity.querySelector('.empty')?.remove();
  }

  async function loadRecent() {
    const res = await api.get('/downloads', { page: 1, per_page: 15 });
    const items = (res.items || []).slice().reverse();
    if (!items.length) activity.append(h('li', { class: 'empty' }, 'No activity yet. Downloads and queue changes appear here as they happen.'));
    for (const d of items) addActivity(d.status, `${d.platform}/${d.source}: ${d.filename || d.url}`, d.download_date);
  }

  try {
    await Promise.all([loadOverview(), loadCharts(), loadRecent()]);
  } catch (err) {
    if (!ctx.isCurrent()) return;
    mount(root, errorState(err, () => render(root, ctx)));
    return;
  }

  const tick = setInterval(() => {
    const el = root.querySelector('[data-countdown]');
    if (el && nextAt) {
      const left = (nextAt - Date.now()) / 1000;
      el.textContent = left > 0 ? duration(left) : 'running now';
    }
  }, 1000);
  ctx.onCleanup(() => clearInterval(tick));

  // Live: feed the activity list, and refresh the numbers at most every 3 s.
  let refreshTimer = null;
  const refreshSoon = () => {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      loadOverview().catch(() => {});
      loadCharts().catch(() => {});
    }, 3000);
  };
  ctx.onCleanup(() => clearTimeout(refreshTimer));
  ctx.onCleanup(live.on('download_completed', (d, ev) => {
    addActivity(d.status, `${d.platform}/${d.source}: ${num(d.items_downloaded)} item(s) in ${duration(d.duration_seconds)}${d.error_message ? ` — ${d.error_message}` : ''}`, ev.timestamp);
    refreshSoon();
  }));
  ctx.onCleanup(live.on('queue_updated', (d, ev) => {
    if (d.action !== 'started') addActivity(d.action, `${d.item?.platform}/${d.item?.source} ${d.item?.url || ''}`, ev.timestamp);
    refreshSoon();
  }));
  ctx.onCleanup(live.on('notification', (d, ev) => addActivity(d.level, `${d.title}: ${d.message}`, ev.timestamp)));
  ctx.onCleanup(live.on('connected', refreshSoon));
}
