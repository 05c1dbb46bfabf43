// The scale bench's plot as a hand-written SVG: log-scale x (dataset size), log-scale y (ms), one
// polyline per measure, the goals as markers. No plotting library.

export const SERIES = [
  { key: 'noop_ms', label: 'no-op run (median)', color: '#1f77b4' },
  { key: 'one_edit_ms', label: 'one-edit run', color: '#ff7f0e' },
  { key: 'watch_p95_ms', label: 'watch p95 (save -> diag.)', color: '#2ca02c' },
  { key: 'status_ms', label: 'status', color: '#9467bd' },
];

export const GOALS = [
  { size: 10_000, ms: 200, label: 'no-op 200 ms', color: '#1f77b4' },
  { size: 100_000, ms: 1000, label: 'no-op 1 s', color: '#1f77b4' },
  { size: 10_000, ms: 100, label: 'watch p95 100 ms', color: '#2ca02c' },
  { size: 1_000, ms: 50, label: 'watch p95 50 ms', color: '#2ca02c' },
];

const escapeXml = (s) => String(s).replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]);

/** powers of ten from below lo to above hi, for a log axis */
function decades(lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e);
  return out;
}

const fmtSize = (n) => (n >= 1000 ? `${n / 1000}k` : String(n));
const fmtMs = (ms) => (ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`);

/** rows: [{ size, noop_ms, one_edit_ms, watch_p95_ms, status_ms }] (a missing or null value: no point) */
export function scaleSvg(rows, { title = 'lorabuild at scale' } = {}) {
  const W = 760;
  const H = 460;
  const m = { left: 70, right: 220, top: 40, bottom: 50 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const values = rows.flatMap((r) => SERIES.map((s) => r[s.key])).filter((v) => typeof v === 'number' && v > 0);
  const sizes = [...rows.map((r) => r.size), ...GOALS.map((g) => g.size)];
  const xTicks = decades(Math.min(...sizes), Math.max(...sizes));
  const yTicks = decades(Math.min(...values, ...GOALS.map((g) => g.ms)), Math.max(...values, ...GOALS.map((g) => g.ms)));
  const [x0, x1] = [Math.log10(xTicks[0]), Math.log10(xTicks.at(-1))];
  const [y0, y1] = [Math.log10(yTicks[0]), Math.log10(yTicks.at(-1))];
  const X = (size) => +(m.left + ((Math.log10(size) - x0) / (x1 - x0 || 1)) * pw).toFixed(1);
  const Y = (ms) => +(m.top + ph - ((Math.log10(ms) - y0) / (y1 - y0 || 1)) * ph).toFixed(1);

  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<title>${escapeXml(title)}</title>`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${m.left}" y="22" font-size="15">${escapeXml(title)}</text>`);
  // grid and axes
  for (const t of xTicks) {
    out.push(`<line x1="${X(t)}" y1="${m.top}" x2="${X(t)}" y2="${m.top + ph}" stroke="#ddd"/>`);
    out.push(`<text x="${X(t)}" y="${m.top + ph + 18}" text-anchor="middle">${fmtSize(t)}</text>`);
  }
  for (const t of yTicks) {
    out.push(`<line x1="${m.left}" y1="${Y(t)}" x2="${m.left + pw}" y2="${Y(t)}" stroke="#ddd"/>`);
    out.push(`<text x="${m.left - 6}" y="${Y(t) + 4}" text-anchor="end">${fmtMs(t)}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${H - 10}" text-anchor="middle">dataset size (images, log scale)</text>`);
  out.push(`<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">wall time (ms, log scale)</text>`);
  // goals: a hollow diamond at the goal, dashed to the axis
  for (const g of GOALS) {
    const [x, y] = [X(g.size), Y(g.ms)];
    out.push(`<g class="goal"><line x1="${x - 14}" y1="${y}" x2="${x + 14}" y2="${y}" stroke="${g.color}" stroke-dasharray="3 2"/>`);
    out.push(`<path d="M ${x} ${y - 6} L ${x + 6} ${y} L ${x} ${y + 6} L ${x - 6} ${y} Z" fill="white" stroke="${g.color}" stroke-width="1.5"/>`);
    out.push(`<text x="${x + 9}" y="${y - 7}" font-size="10" fill="${g.color}">goal: ${escapeXml(g.label)}</text></g>`);
  }
  // one polyline per measure (empty when no size measured it), a dot per point
  for (const s of SERIES) {
    const pts = rows.filter((r) => typeof r[s.key] === 'number' && r[s.key] > 0).sort((a, b) => a.size - b.size).map((r) => [X(r.size), Y(r[s.key])]);
    out.push(`<polyline class="series" data-measure="${s.key}" points="${pts.map((p) => p.join(',')).join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const [x, y] of pts) out.push(`<circle cx="${x}" cy="${y}" r="3.5" fill="${s.color}"/>`);
  }
  // legend
  SERIES.forEach((s, i) => {
    const y = m.top + 10 + i * 20;
    out.push(`<line x1="${m.left + pw + 14}" y1="${y}" x2="${m.left + pw + 38}" y2="${y}" stroke="${s.color}" stroke-width="2"/>`);
    out.push(`<text x="${m.left + pw + 44}" y="${y + 4}">${escapeXml(s.label)}</text>`);
  });
  const gy = m.top + 10 + SERIES.length * 20;
  out.push(`<path d="M ${m.left + pw + 26} ${gy - 6} L ${m.left + pw + 32} ${gy} L ${m.left + pw + 26} ${gy + 6} L ${m.left + pw + 20} ${gy} Z" fill="white" stroke="#333" stroke-width="1.5"/>`);
  out.push(`<text x="${m.left + pw + 44}" y="${gy + 4}">goal (issue 20)</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
