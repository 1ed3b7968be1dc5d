// @ts-check
/** A key's usage as a bar chart, drawn as SVG by Preact: one bar per hour or day, a value axis
 * with round ticks, time labels, and the period's total. Drawn here rather than with a chart
 * library: the small SVG ones (Chartist) set inline style attributes, which the console's
 * Content-Security-Policy refuses, and d3's scales ship as dozens of module files. */

import { count, html, money, refusedWords } from './components.js';

const W = 720;
const H = 260;
const M = { top: 16, right: 16, bottom: 48, left: 56 };

/** Round tick values from 0 to at least `max`: steps of 1, 2 or 5 × 10ⁿ, and never below 1:
 * requests and costs (in minor units) are whole numbers. */
export function ticks(/** @type {number} */ max, count = 5) {
  if (max <= 0) return [0, 1];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw);
  const out = [];
  for (let v = 0; v < max + step; v += step) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

const labels = {};

/** Room one time label takes on the axis, in the SVG's units ("3 Dec, 14" and "3 Dec"). */
const LABEL_WIDTH = { hour: 80, day: 52 };
/** Label steps that read as the calendar does: every 1, 2, 3, 6 or 12 hours, or whole days;
 * every 1, 2, 3 days, or whole weeks. */
const STEPS = { hour: [1, 2, 3, 4, 6, 12, 24, 48, 72, 168], day: [1, 2, 3, 7, 14, 28, 56, 91, 182, 364] };

/** Every how many points a time label is drawn, so that labels never overlap. */
export function labelStep(/** @type {number} */ points, /** @type {'hour'|'day'} */ granularity, width = W - M.left - M.right) {
  const room = Math.max(1, Math.floor(width / LABEL_WIDTH[granularity]));
  const needed = Math.ceil(points / room);
  return STEPS[granularity].find((s) => s >= needed) ?? needed;
}

/** @param {string} start @param {'hour' | 'day'} granularity */
function label(start, granularity) {
  labels[granularity] ??= new Intl.DateTimeFormat(undefined, granularity === 'hour'
    ? { month: 'short', day: 'numeric', hour: '2-digit', timeZone: 'UTC' }
    : { month: 'short', day: 'numeric', timeZone: 'UTC' });
  return labels[granularity].format(new Date(start));
}

/**
 * Requests (or cost) per hour or day; beside each requests bar, the calls refused then (a
 * second, hatched bar), when the period had any.
 * @param {{series: {granularity: 'hour'|'day', points: {start: string, requests: number, cost: number, refused?: {total: number}}[],
 *          totals?: {refused?: any}}, measure: 'requests' | 'cost', title: string}} props
 */
export function UsageChart({ series, measure, title }) {
  const points = series.points;
  const values = points.map((p) => p[measure]);
  const total = values.reduce((a, b) => a + b, 0);
  const refusedTotal = points.reduce((a, p) => a + (p.refused?.total ?? 0), 0);
  const withRefused = measure === 'requests' && refusedTotal > 0;
  const refused = points.map((p) => (withRefused ? p.refused?.total ?? 0 : 0));
  const axis = ticks(Math.max(0, ...values, ...refused));
  const top = axis[axis.length - 1];
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const band = plotW / Math.max(points.length, 1);
  const y = (/** @type {number} */ v) => M.top + plotH - (v / top) * plotH;
  const every = labelStep(points.length, series.granularity);
  const unit = series.granularity === 'hour' ? 'hour' : 'day';
  const what = measure === 'requests' ? 'Requests' : 'Cost';
  const amount = measure === 'cost' ? money : count;
  const summary = `${title}: ${what.toLowerCase()} per ${unit}, ${points.length} ${unit}s, total ${amount(total)}`
    + (withRefused ? `; refused calls ${count(refusedTotal)}` : '');
  const width = withRefused ? 0.35 : 0.7;
  return html`<figure class="chart">
    <svg viewBox=${`0 0 ${W} ${H}`} role="img" aria-label=${summary}>
      ${axis.map((t) => html`<g class="tick">
        <line x1=${M.left} x2=${W - M.right} y1=${y(t)} y2=${y(t)} />
        <text x=${M.left - 8} y=${y(t) + 4} text-anchor="end">${amount(t)}</text>
      </g>`)}
      ${points.map((p, i) => {
        const h = (p[measure] / top) * plotH;
        return html`<rect class="bar" x=${M.left + i * band + band * 0.15} width=${Math.max(band * width, 1)}
          y=${M.top + plotH - h} height=${h}><title>${label(p.start, series.granularity)}: ${amount(p[measure])}</title></rect>`;
      })}
      ${withRefused ? points.map((p, i) => {
        const h = (refused[i] / top) * plotH;
        return refused[i] ? html`<rect class="bar refused" x=${M.left + i * band + band * 0.5} width=${Math.max(band * width, 1)}
          y=${M.top + plotH - h} height=${h}><title>${label(p.start, series.granularity)}: ${refusedWords(p.refused)} refused</title></rect>` : null;
      }) : null}
      ${points.map((p, i) => (i % every === 0
        ? html`<text class="time" x=${M.left + i * band + band / 2} y=${H - M.bottom + 18} text-anchor="middle">${label(p.start, series.granularity)}</text>`
        : null))}
      <line class="axis" x1=${M.left} x2=${W - M.right} y1=${M.top + plotH} y2=${M.top + plotH} />
      <text class="axis-title" x=${M.left + plotW / 2} y=${H - 6} text-anchor="middle">${unit === 'hour' ? 'Hour (UTC)' : 'Day (UTC)'}</text>
      <text class="axis-title" transform=${`translate(14 ${M.top + plotH / 2}) rotate(-90)`} text-anchor="middle">${what} per ${unit}</text>
    </svg>
    <figcaption>${what} in the period: <strong>${amount(total)}</strong>
      ${withRefused ? html`<span class="legend"><span class="swatch allowed"></span> allowed requests <span class="swatch refused"></span> refused calls</span>
        <br />Refused in the period: <strong class="refused">${refusedWords(series.totals?.refused ?? { total: refusedTotal })}</strong>` : null}</figcaption>
  </figure>`;
}
