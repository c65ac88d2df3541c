// Two tiny SVG charts (no chart library: a few hundred bytes instead of
// hundreds of kilobytes). Sizes are fixed by CSS so nothing shifts on load.

import { h, num, bytes, pct } from './ui.js';

const NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Stacked bars of successes and failures over time: [{label, success, failed}]. */
export function timelineChart(points, { ariaLabel = 'Downloads over time' } = {}) {
  const width = 720; const height = 220; const left = 36; const bottom = 24; const top = 8;
  const max = Math.max(1, ...points.map((p) => p.success + p.failed));
  const plotW = width - left - 8; const plotH = height - bottom - top;
  const barW = points.length ? plotW / points.length : plotW;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': ariaLabel, preserveAspectRatio: 'none' });
  svg.append(s('line', { class: 'axis', x1: left, y1: top + plotH, x2: width - 8, y2: top + plotH }));
  svg.append(s('text', { x: 4, y: top + 10 }, num(max)));
  svg.append(s('text', { x: 4, y: top + plotH }, '0'));
  const labelEvery = Math.max(1, Math.ceil(points.length / 8));
  points.forEach((p, i) => {
    const x = left + i * barW + barW * 0.1;
    const w = Math.max(1, barW * 0.8);
    const okH = (p.success / max) * plotH;
    const failH = (p.failed / max) * plotH;
    const title = s('title', {}, `${p.label}: ${num(p.success)} ok, ${num(p.failed)} failed`);
    const g = s('g', {}, title,
      s('rect', { class: 'bar-ok', x, y: top + plotH - okH, width: w, height: okH }),
      s('rect', { class: 'bar-fail', x, y: top + plotH - okH - failH, width: w, height: failH }));
    svg.append(g);
    if (i % labelEvery === 0) svg.append(s('text', { x, y: height - 6 }, p.label));
  });
  return svg;
}

/** Horizontal bars per platform: [{platform, downloads, success_rate, total_size_bytes}]. */
export function platformBars(rows) {
  const max = Math.max(1, ...rows.map((r) => r.downloads || 0));
  return h('div', { role: 'list', 'aria-label': 'Downloads per platform' }, rows.map((r) => h('div', { class: 'hbar', role: 'listitem',
    title: `${r.platform}: ${num(r.downloads)} downloads, ${pct(r.success_rate)} success, ${bytes(r.total_size_bytes)}` },
  h('span', null, r.platform),
  h('span', { class: 'track' }, h('span', { class: 'fill', style: { width: `${((r.downloads || 0) / max) * 100}%`, display: 'block' } })),
  h('span', { class: 'muted' }, num(r.downloads)))));
}
