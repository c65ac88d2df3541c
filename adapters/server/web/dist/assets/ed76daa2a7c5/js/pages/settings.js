import * as api from '../api.js';
import { h, mount, errorState, toast } from '../ui.js';

const MASK = '***';
const SECRET = /(password|secret|api_key|apikey|token|captcha_api_key|private_key)$/i;
/** Limits the server enforces (core's Settings::validate), checked here first. */
const LIMITS = {
  'general.concurrent_downloads': [1, 64], 'general.retry_attempts': [1, 20], 'general.default_priority': [1, 10],
  'general.storage_limit_gb': [0, null], 'general.auto_cleanup_days': [0, 36500],
  'downloads.progress_events_per_second': [1, 20], 'downloads.stop_after_known': [0, 1000],
  'network.connect_timeout_seconds': [1, 600], 'network.read_timeout_seconds': [1, 3600],
  'network.per_host_requests_per_second': [0, null], 'network.per_host_concurrency': [0, null],
  'logs.retention_days': [0, 36500], 'notifications.email.smtp_port': [1, 65535],
};
const NOT_EMPTY = new Set(['downloads.filename_template']);
const URLS = new Set(['network.proxy']);
const HINTS = {
  'general.download_directory': 'Empty: <data dir>/downloads',
  'general.storage_limit_gb': '0 is unlimited; new items wait once the limit is reached',
  'general.auto_cleanup_days': '0 keeps downloads forever',
  'general.default_priority': '1 is the most urgent',
  'downloads.filename_template': 'Placeholders: {source} {date:%Y%m%d} {media_id} {ext} …',
  'network.proxy': 'http://, https:// or socks5:// — empty for none',
  'network.block_private_addresses': 'Refuse loopback and LAN targets',
};

/** Managed elsewhere: cookie files are uploaded on the Platforms page. */
const MANAGED_ELSEWHERE = /^platforms\.[^.]+\.cookies$/;

/** Sections and fields in the spec's order; keys not listed follow, sorted. */
const ORDER = ['general', 'downloads', 'network', 'platforms', 'notifications', 'logs',
  'download_directory', 'concurrent_downloads', 'retry_attempts', 'default_priority', 'storage_limit_gb',
  'auto_cleanup_days', 'auto_cleanup_delete_files', 'directory_template', 'filename_template', 'enabled'];
const rank = (key) => { const i = ORDER.indexOf(key); return i < 0 ? ORDER.length : i; };
const ordered = (object) => Object.entries(object).sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));

const UNITS = { gb: 'GB', seconds: 'seconds', days: 'days', per_hour: 'per hour', per_second: 'per second' };
const label = (key) => {
  let text = key;
  let unit = '';
  for (const [suffix, name] of Object.entries(UNITS)) {
    if (text.endsWith(`_${suffix}`)) { text = text.slice(0, -suffix.length - 1); unit = ` (${name})`; break; }
  }
  return text.replaceAll('_', ' ').replace(/^./, (c) => c.toUpperCase()) + unit;
};

export default async function render(root, ctx) {
  const admin = api.isAdmin();
  const body = h('div', { class: 'stack' }, h('div', { class: 'card', style: { minHeight: '400px' } }, h('span', { class: 'skeleton' })));
  mount(root, h('div', { class: 'page-head' }, h('h1', { id: 'page-title' }, 'Settings')), body);
  if (!admin) {
    mount(body, h('div', { class: 'empty' }, h('strong', null, 'Settings are for administrators'), h('p', null, 'Ask an administrator to change them.')));
    return;
  }

  let original;
  /** path → {input, kind, original} */
  let inputs = new Map();

  function leaf(path, key, value) {
    const id = `s-${path.replaceAll('.', '-')}`;
    const limits = LIMITS[path];
    let input;
    let kind;
    if (typeof value === 'boolean') {
      kind = 'bool';
      input = h('input', { type: 'checkbox', id, name: path, checked: value });
      inputs.set(path, { input, kind, original: value });
      return h('div', { class: 'field' }, h('label', { class: 'check', style: { color: 'var(--text)', fontWeight: 400 } }, input, label(key)),
        HINTS[path] ? h('small', { class: 'hint' }, HINTS[path]) : null, h('small', { class: 'field-error' }));
    }
    if (typeof value === 'number') {
      kind = 'number';
      input = h('input', { type: 'number', id, name: path, value, step: Number.isInteger(value) && !path.endsWith('_gb') ? 1 : 'any',
        min: limits?.[0] ?? null, max: limits?.[1] ?? null });
    } else if (typeof value === 'string' && (SECRET.test(key) || value === MASK)) {
      kind = 'secret';
      input = h('input', { type: 'password', id, name: path, value: '', autocomplete: 'new-password',
        placeholder: value ? 'set — type to replace' : 'not set' });
    } else if (typeof value === 'string') {
      kind = 'string';
      input = h('input', { type: path === 'network.proxy' ? 'url' : 'text', id, name: path, value });
    } else {
      kind = 'json';
      input = h('textarea', { id, name: path, rows: 3 }, JSON.stringify(value, null, 2));
    }
    inputs.set(path, { input, kind, original: value });
    return h('div', { class: 'field' }, h('label', { for: id }, label(key)), input,
      kind === 'secret' ? h('small', { class: 'hint' }, 'Write-only: the current value is never shown') : null,
      HINTS[path] ? h('small', { class: 'hint' }, HINTS[path]) : null,
      kind === 'json' ? h('small', { class: 'hint' }, 'JSON') : null,
      h('small', { class: 'field-error' }));
  }

  function section(path, key, value, depth) {
    const entries = ordered(value).filter(([k]) => !MANAGED_ELSEWHERE.test(`${path}.${k}`));
    const isGroup = entries.length > 0 && entries.some(([, v]) => v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length);
    const leaves = entries.filter(([, v]) => !(v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length));
    const groups = entries.filter(([, v]) => v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length);
    void isGroup;
    return h('fieldset', { 'data-section': path, class: depth === 0 ? 'card' : '' },
      h('legend', null, label(key)),
      leaves.length ? h('div', { class: 'form-grid', style: { alignItems: 'start' } }, leaves.map(([k, v]) => leaf(`${path}.${k}`, k, v))) : null,
      groups.length ? h('div', { class: 'stack', style: { marginTop: leaves.length ? '12px' : 0 } }, groups.map(([k, v]) => section(`${path}.${k}`, k, v, depth + 1))) : null);
  }

  function setError(path, message) {
    const entry = inputs.get(path);
    if (!entry) return false;
    entry.input.setAttribute('aria-invalid', 'true');
    const err = entry.input.closest('.field').querySelector('.field-error');
    err.textContent = message;
    return true;
  }

  function validate() {
    let firstBad = null;
    const patch = {};
    let changed = 0;
    for (const [path, { input, kind, original: before }] of inputs) {
      input.removeAttribute('aria-invalid');
      input.closest('.field').querySelector('.field-error').textContent = '';
      let value;
      if (kind === 'bool') value = input.checked;
      else if (kind === 'number') {
        if (input.value.trim() === '' || Number.isNaN(Number(input.value))) { setError(path, 'Enter a number'); firstBad ??= input; continue; }
        value = Number(input.value);
        const [lo, hi] = LIMITS[path] || [null, null];
        if ((lo !== null && value < lo) || (hi !== null && value > hi)) {
          setError(path, hi === null ? `Must be at least ${lo}` : `Must be between ${lo} and ${hi}`); firstBad ??= input; continue;
        }
      } else if (kind === 'secret') {
        if (input.value === '') continue; // unchanged
        value = input.value;
      } else if (kind === 'json') {
        try { value = JSON.parse(input.value || 'null'); } catch { setError(path, 'Not valid JSON'); firstBad ??= input; continue; }
      } else {
        value = input.value;
        if (NOT_EMPTY.has(path) && !value.trim()) { setError(path, 'Must not be empty'); firstBad ??= input; continue; }
        if (URLS.has(path) && value && !/^(https?|socks5h?):\/\/\S+$/i.test(value)) { setError(path, 'Use http://, https:// or socks5://'); firstBad ??= input; continue; }
      }
      if (JSON.stringify(value) === JSON.stringify(before)) continue;
      changed += 1;
      const keys = path.split('.');
      let node = patch;
      for (const k of keys.slice(0, -1)) node = (node[k] ??= {});
      node[keys.at(-1)] = value;
    }
    return { patch, changed, firstBad };
  }

  async function load() {
    try {
      original = await api.get('/settings');
      if (!ctx.isCurrent()) return;
      inputs = new Map();
      const status = h('p', { class: 'form-error', role: 'alert', 'data-settings-error': '' });
      const saveBtn = h('button', { class: 'btn primary', type: 'submit', 'data-save': '' }, 'Save settings');
      const form = h('form', { class: 'stack', 'data-settings': '', novalidate: true },
        ordered(original).map(([k, v]) => (v && typeof v === 'object' && !Array.isArray(v)
          ? section(k, k, v, 0) : h('div', { class: 'card' }, leaf(k, k, v)))),
        status,
        h('div', { class: 'row end', style: { position: 'sticky', bottom: '0', padding: '12px 0', background: 'var(--bg)' } },
          h('button', { class: 'btn', type: 'button', onclick: load }, 'Discard changes'), saveBtn));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        status.textContent = '';
        const { patch, changed, firstBad } = validate();
        if (firstBad) { firstBad.focus(); status.textContent = 'Fix the highlighted fields, then save again.'; return; }
        if (!changed) { toast({ level: 'info', title: 'Nothing to save', message: 'No setting was changed.' }); return; }
        saveBtn.disabled = true;
        try {
          const res = await api.patch('/settings', patch);
          toast({ level: 'success', title: 'Settings saved', message: `${res?.updated_fields ?? changed} field(s) updated` });
          await load();
        } catch (err) {
          // The server names the field: "general.concurrent_downloads: must be …".
          const match = /^([a-z0-9_.-]+):\s*(.*)$/i.exec(err.message || '');
          const fieldName = err.body?.field || match?.[1];
          if (!(fieldName && setError(fieldName, match?.[2] || err.message))) status.textContent = err.message;
          else status.textContent = 'The server refused a value; see the highlighted field.';
        } finally {
          saveBtn.disabled = false;
        }
      });
      mount(body, form);
    } catch (err) {
      mount(body, errorState(err, load));
    }
  }
  await load();
}
