// Standard 5-field cron (minute hour day-of-month month day-of-week), as the
// server's scheduler reads it: lists, ranges, steps, month and weekday names,
// 7 as Sunday, and the @hourly/@daily/... shorthands. Used to validate the
// schedule while it is typed and to preview its next runs. Times are UTC,
// like the scheduler's.

const MACROS = {
  '@yearly': '0 0 1 1 *', '@annually': '0 0 1 1 *', '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0', '@daily': '0 0 * * *', '@midnight': '0 0 * * *', '@hourly': '0 * * * *',
};
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTHS, offset: 1 },
  { name: 'day of week', min: 0, max: 7, names: DAYS, offset: 0 },
];

export class CronError extends Error {}

function value(token, spec) {
  const lower = token.toLowerCase();
  if (spec.names) {
    const idx = spec.names.indexOf(lower);
    if (idx >= 0) return idx + spec.offset;
  }
  if (!/^\d+$/.test(token)) throw new CronError(`${spec.name}: "${token}" is not a number`);
  const n = Number(token);
  if (n < spec.min || n > spec.max) throw new CronError(`${spec.name}: ${n} is outside ${spec.min}–${spec.max}`);
  return n;
}

function parseField(text, spec) {
  const set = new Set();
  for (const part of text.split(',')) {
    if (part === '') throw new CronError(`${spec.name}: empty list item`);
    const [range, stepText] = part.split('/');
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) === 0) throw new CronError(`${spec.name}: step "${stepText}" must be a positive number`);
      step = Number(stepText);
    }
    let lo; let hi;
    if (range === '*') { lo = spec.min; hi = spec.max; }
    else if (range.includes('-')) {
      const [a, b] = range.split('-');
      lo = value(a, spec); hi = value(b, spec);
      if (lo > hi) throw new CronError(`${spec.name}: range ${range} runs backwards`);
    } else {
      lo = value(range, spec);
      hi = stepText !== undefined ? spec.max : lo;
    }
    for (let v = lo; v <= hi; v += step) set.add(v);
  }
  return set;
}

/** Parses an expression; throws CronError with a message a person can act on. */
export function parse(expr) {
  const text = String(expr || '').trim();
  const expanded = MACROS[text.toLowerCase()] || text;
  const parts = expanded.split(/\s+/).filter(Boolean);
  if (parts.length !== 5) {
    throw new CronError(`A schedule has 5 fields (minute hour day month weekday); this has ${parts.length}. Example: "0 */4 * * *"`);
  }
  const sets = parts.map((p, i) => parseField(p, FIELDS[i]));
  if (sets[4].has(7)) { sets[4].delete(7); sets[4].add(0); }
  return {
    minutes: sets[0], hours: sets[1], days: sets[2], months: sets[3], weekdays: sets[4],
    domAny: parts[2] === '*' || parts[2].startsWith('*/'), dowAny: parts[4] === '*' || parts[4].startsWith('*/'),
  };
}

function dayMatches(c, d) {
  const dom = c.days.has(d.getUTCDate());
  const dow = c.weekdays.has(d.getUTCDay());
  if (c.domAny && c.dowAny) return true;
  if (c.domAny) return dow;
  if (c.dowAny) return dom;
  return dom || dow; // both restricted: either matches (classic cron)
}

/** The next `count` run times (Date, UTC) strictly after `from`. */
export function nextRuns(expr, count = 5, from = new Date()) {
  const c = typeof expr === 'string' ? parse(expr) : expr;
  const out = [];
  const d = new Date(from.getTime());
  d.setUTCSeconds(0, 0);
  d.setUTCMinutes(d.getUTCMinutes() + 1);
  const limit = from.getTime() + 5 * 366 * 86400_000;
  while (out.length < count && d.getTime() < limit) {
    if (!c.months.has(d.getUTCMonth() + 1)) {
      d.setUTCMonth(d.getUTCMonth() + 1, 1); d.setUTCHours(0, 0, 0, 0); continue;
    }
    if (!dayMatches(c, d)) { d.setUTCDate(d.getUTCDate() + 1); d.setUTCHours(0, 0, 0, 0); continue; }
    if (!c.hours.has(d.getUTCHours())) { d.setUTCHours(d.getUTCHours() + 1, 0, 0, 0); continue; }
    if (!c.minutes.has(d.getUTCMinutes())) { d.setUTCMinutes(d.getUTCMinutes() + 1, 0, 0); continue; }
    out.push(new Date(d.getTime()));
    d.setUTCMinutes(d.getUTCMinutes() + 1, 0, 0);
  }
  return out;
}
