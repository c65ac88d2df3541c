import * as api from '../api.js';
import * as live from '../live.js';
import * as cron from '../cron.js';
import {
  h, mount, badge, timeEl, relative, skeletonRows, emptyState, errorState, field, selectEl, num,
  duration, modal, confirmDialog, toast, toastError,
} from '../ui.js';

const PRESETS = [
  ['', 'Presets…'], ['0 * * * *', 'Every hour'], ['0 */4 * * *', 'Every 4 hours'], ['0 */6 * * *', 'Every 6 hours'],
  ['0 3 * * *', 'Daily at 03:00'], ['0 9 * * 1-5', 'Weekdays at 09:00'], ['0 0 * * 0', 'Weekly on Sunday'],
];

export default async function render(root, ctx) {
  const writer = api.canWrite();
  const admin = api.isAdmin();
  let platforms = [];
  let jobs = [];
  const tbody = h('tbody', null, skeletonRows(7, 4));
  const histBody = h('tbody', null, skeletonRows(6, 4));
  const histJob = selectEl('job_id', [['', 'All jobs']], ctx.params.get('job_id') || '');
  const histStatus = selectEl('status', [['', 'Any result'], 'success', 'failure', 'running', 'skipped'], ctx.params.get('status') || '');
  const histLimit = selectEl('limit', [20, 50, 100, 500].map((n) => [n, `last ${n}`]), ctx.params.get('limit') || 50);

  mount(root,
    h('div', { class: 'page-head' }, h('h1', { id: 'page-title' }, 'Scheduler'),
      admin ? h('button', { class: 'btn primary', 'data-new-job': '', onclick: () => editJob(null) }, 'New schedule') : null),
    h('div', { class: 'table-wrap' }, h('table', { 'data-jobs': '' },
      h('thead', null, h('tr', null, h('th', null, 'Job'), h('th', null, 'Schedule'), h('th', null, 'Next run'),
        h('th', { class: 'hide-sm' }, 'Last run'), h('th', { class: 'hide-sm' }, 'Runs'), h('th', null, 'Enabled'), h('th', null, ''))),
      tbody)),
    h('div', { class: 'section' }, h('h2', null, 'History'),
      h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() }, field('Job', histJob), field('Result', histStatus), field('Show', histLimit)),
      h('div', { class: 'table-wrap' }, h('table', { 'data-history': '' },
        h('thead', null, h('tr', null, h('th', null, 'Job'), h('th', null, 'Started'), h('th', { class: 'hide-sm' }, 'Duration'),
          h('th', null, 'Result'), h('th', null, 'Items'), h('th', { class: 'hide-sm' }, 'Error'))),
        histBody))));

  for (const el of [histJob, histStatus, histLimit]) el.addEventListener('change', loadHistory);

  function jobRow(job) {
    const toggle = h('input', { type: 'checkbox', checked: !!job.enabled, disabled: !admin, 'aria-label': `Enable ${job.name}`,
      onchange: async (e) => {
        try { await api.patch(`/scheduler/jobs/${encodeURIComponent(job.id)}`, { enabled: e.target.checked }); loadJobs(); }
        catch (err) { e.target.checked = !e.target.checked; toastError(err, 'Could not change the job'); }
      } });
    return h('tr', { 'data-job-id': job.id },
      h('td', null, h('strong', null, job.name || job.id), h('div', { class: 'muted' }, `${job.platform} · ${job.source}${job.content_type ? ` · ${job.content_type}` : ''}`)),
      h('td', null, job.schedule_human || job.schedule, h('div', { class: 'muted mono' }, job.schedule)),
      h('td', { 'data-next-run': '' }, job.next_run ? [relative(job.next_run), h('div', { class: 'muted' }, timeEl(job.next_run))] : h('span', { class: 'muted' }, job.enabled ? '—' : 'disabled')),
      h('td', { class: 'hide-sm' }, job.last_run ? [badge(job.last_run_status), ` ${num(job.last_run_items)} item(s)`, h('div', { class: 'muted' }, timeEl(job.last_run))] : h('span', { class: 'muted' }, 'never')),
      h('td', { class: 'hide-sm' }, `${num(job.total_runs)} · `, h('span', { title: 'succeeded' }, `✓${num(job.success_count)}`), ' ', h('span', { title: 'failed' }, `✗${num(job.failure_count)}`)),
      h('td', null, toggle),
      h('td', { class: 'actions' },
        writer ? h('button', { class: 'btn small', onclick: () => runNow(job) }, 'Run now') : null,
        admin ? h('button', { class: 'btn small', onclick: () => editJob(job) }, 'Edit') : null,
        admin ? h('button', { class: 'btn small danger', 'data-action': 'delete', onclick: () => removeJob(job) }, 'Delete') : null));
  }

  async function loadJobs() {
    try {
      const res = await api.get('/scheduler/jobs');
      if (!ctx.isCurrent()) return;
      jobs = res.jobs || [];
      mount(tbody, jobs.length ? jobs.map(jobRow) : h('tr', null, h('td', { colspan: 7 }, emptyState('No schedules yet',
        admin ? 'Create one with "New schedule": pick a platform and source, and how often to check it.' : 'An administrator can create schedules.'))));
      const current = histJob.value;
      mount(histJob, h('option', { value: '' }, 'All jobs'), jobs.map((j) => h('option', { value: j.id, selected: j.id === current }, j.name || j.id)));
    } catch (err) {
      mount(tbody, h('tr', null, h('td', { colspan: 7 }, errorState(err, loadJobs))));
    }
  }

  async function loadHistory() {
    ctx.setParams({ job_id: histJob.value, status: histStatus.value, limit: histLimit.value !== '50' ? histLimit.value : '' });
    try {
      const res = await api.get('/scheduler/history', { job_id: histJob.value, status: histStatus.value, limit: histLimit.value });
      if (!ctx.isCurrent()) return;
      const runs = res.history || [];
      const name = (id) => jobs.find((j) => j.id === id)?.name || id;
      mount(histBody, runs.length ? runs.map((r) => h('tr', null,
        h('td', null, name(r.job_id)), h('td', null, timeEl(r.started_at)),
        h('td', { class: 'hide-sm' }, r.duration_seconds !== null && r.duration_seconds !== undefined ? duration(r.duration_seconds) : '—'),
        h('td', null, badge(r.status)), h('td', null, num(r.items_downloaded)),
        h('td', { class: 'hide-sm form-error' }, r.error_message || '')))
        : h('tr', null, h('td', { colspan: 6 }, emptyState('No runs recorded', 'Runs appear here after a job fires or you press "Run now".'))));
    } catch (err) {
      mount(histBody, h('tr', null, h('td', { colspan: 6 }, errorState(err, loadHistory))));
    }
  }

  async function runNow(job) {
    try {
      const res = await api.post(`/scheduler/jobs/${encodeURIComponent(job.id)}/run`, {});
      toast({ level: 'success', title: `${job.name}: ${res.status || 'queued'}`, message: res.message || '' });
      setTimeout(() => { loadJobs(); loadHistory(); }, 1000);
    } catch (err) { toastError(err, 'Could not run the job'); }
  }

  async function removeJob(job) {
    if (!await confirmDialog('Delete schedule', `Delete "${job.name}"? Its history is kept.`, { confirmLabel: 'Delete', danger: true })) return;
    try { await api.del(`/scheduler/jobs/${encodeURIComponent(job.id)}`); loadJobs(); } catch (err) { toastError(err); }
  }

  function editJob(job) {
    const cfg = job?.config || {};
    const name = h('input', { name: 'name', required: true, value: job?.name || '', maxlength: 200 });
    const platform = selectEl('platform', platforms.map((p) => [p.name, p.display_name || p.name]), job?.platform || 'direct', { disabled: !!job });
    const source = h('input', { name: 'source', required: true, value: job?.source || '', disabled: !!job, placeholder: 'username, forum name or URL' });
    const contentType = selectEl('content_type', [], job?.content_type || '');
    const schedule = h('input', { name: 'schedule', required: true, value: job?.schedule || '0 */4 * * *', class: 'mono', autocomplete: 'off', spellcheck: false });
    const preset = selectEl('preset', PRESETS, '', { 'aria-label': 'Schedule presets' });
    const url = h('input', { name: 'url', type: 'url', value: cfg.url || '', placeholder: 'optional: the URL when the source is a label' });
    const maxDownloads = h('input', { name: 'max_downloads', type: 'number', min: 1, value: cfg.max_downloads ?? '' });
    const downloader = selectEl('downloader', [['', 'default']], cfg.downloader || '');
    const enabled = h('input', { type: 'checkbox', name: 'enabled', checked: job ? !!job.enabled : true });
    const preview = h('ol', { class: 'runs', 'data-next-runs': '', 'aria-live': 'polite' });
    const scheduleError = h('small', { class: 'field-error', 'data-cron-error': '' });
    const formError = h('p', { class: 'form-error', role: 'alert' });

    function syncPlatform() {
      const p = platforms.find((x) => x.name === platform.value);
      const types = p?.content_types || [];
      mount(contentType, types.map((t) => h('option', { value: t, selected: t === job?.content_type }, t)));
      mount(downloader, h('option', { value: '' }, 'default'), (p?.downloaders || []).map((d) =>
        h('option', { value: d.name, selected: d.name === cfg.downloader, disabled: d.enabled === false }, d.display_name || d.name)));
    }
    function updatePreview() {
      try {
        const runs = cron.nextRuns(schedule.value, 5);
        schedule.setAttribute('aria-invalid', 'false');
        scheduleError.textContent = '';
        mount(preview, runs.map((d) => h('li', null, timeEl(d.toISOString()), h('span', { class: 'muted' }, ` (${relative(d.toISOString())})`))));
        return true;
      } catch (err) {
        schedule.setAttribute('aria-invalid', 'true');
        scheduleError.textContent = err.message;
        mount(preview);
        return false;
      }
    }
    platform.addEventListener('change', syncPlatform);
    schedule.addEventListener('input', updatePreview);
    preset.addEventListener('change', () => { if (preset.value) { schedule.value = preset.value; updatePreview(); } preset.value = ''; });
    syncPlatform();
    updatePreview();

    const scheduleField = h('div', { class: 'field', style: { gridColumn: '1 / -1' } },
      h('label', { for: 'job-schedule' }, 'Schedule (cron: minute hour day month weekday, UTC)'),
      h('div', { class: 'row' }, Object.assign(schedule, { id: 'job-schedule' }), preset), scheduleError,
      h('small', { class: 'muted' }, 'Next five runs:'), preview);
    const form = h('form', { class: 'stack', 'data-job-form': '' },
      h('div', { class: 'form-grid' }, field('Name', name), field('Platform', platform), field('Source', source),
        field('Content', contentType), scheduleField, field('URL', url), field('Max downloads per run', maxDownloads), field('Downloader', downloader),
        h('label', { class: 'check' }, enabled, 'Enabled')),
      formError,
      h('div', { class: 'row end' }, h('button', { type: 'button', class: 'btn', onclick: () => close() }, 'Cancel'),
        h('button', { type: 'submit', class: 'btn primary' }, job ? 'Save' : 'Create')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      formError.textContent = '';
      if (!updatePreview()) { schedule.focus(); return; }
      const config = { ...cfg };
      for (const [key, input] of [['url', url], ['downloader', downloader]]) {
        if (input.value.trim()) config[key] = input.value.trim(); else delete config[key];
      }
      if (maxDownloads.value) config.max_downloads = Number(maxDownloads.value); else delete config.max_downloads;
      const body = { name: name.value.trim(), schedule: schedule.value.trim(), enabled: enabled.checked, content_type: contentType.value || undefined, config };
      try {
        if (job) await api.patch(`/scheduler/jobs/${encodeURIComponent(job.id)}`, body);
        else await api.post('/scheduler/jobs', { ...body, platform: platform.value, source: source.value.trim() });
        toast({ level: 'success', title: job ? 'Schedule saved' : 'Schedule created', message: body.name });
        close();
        loadJobs();
      } catch (err) {
        formError.textContent = err.message;
      }
    });
    const { close } = modal(job ? `Edit ${job.name}` : 'New schedule', form, { wide: true });
    name.focus();
  }

  try {
    platforms = (await api.get('/platforms')).platforms || [];
  } catch { platforms = []; }
  await Promise.all([loadJobs(), loadHistory()]);
  ctx.onCleanup(live.on('download_completed', (d) => { if (d.job_id) { loadJobs(); loadHistory(); } }));
  const refresher = setInterval(() => { if (document.visibilityState === 'visible') loadJobs(); }, 30_000);
  ctx.onCleanup(() => clearInterval(refresher));
}
