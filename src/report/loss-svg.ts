// The training loss curve as an inline SVG: raw points (light) and a moving average (dark), with
// step and loss ticks. No scripts, no external resources.

const fmt = (v: number) => (Math.abs(v) >= 100 || v === 0 ? String(Math.round(v)) : v.toPrecision(3));

/** Centered moving average over a window of about 5% of the points (at least 1). */
export function smooth(values: number[]): number[] {
  const half = Math.max(0, Math.floor(values.length / 40));
  return values.map((_, i) => {
    const from = Math.max(0, i - half);
    const to = Math.min(values.length, i + half + 1);
    let sum = 0;
    for (let j = from; j < to; j++) sum += values[j];
    return sum / (to - from);
  });
}

export function lossCurveSvg(points: [number, number][], width = 640, height = 240): string {
  const finite = points.filter(([s, l]) => Number.isFinite(s) && Number.isFinite(l));
  if (finite.length === 0) {
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img" aria-label="no loss recorded"><text x="${width / 2}" y="${height / 2}" text-anchor="middle" font-family="sans-serif" font-size="14" fill="#666">no loss recorded</text></svg>`;
  }
  const margin = { left: 56, right: 12, top: 12, bottom: 32 };
  const steps = finite.map(([s]) => s);
  const losses = finite.map(([, l]) => l);
  const [x0, x1] = [Math.min(...steps), Math.max(...steps)];
  let [y0, y1] = [Math.min(...losses), Math.max(...losses)];
  if (y0 === y1) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const x = (s: number) => margin.left + (x1 === x0 ? plotW / 2 : ((s - x0) / (x1 - x0)) * plotW);
  const y = (l: number) => margin.top + (1 - (l - y0) / (y1 - y0)) * plotH;
  const line = (vals: number[]) => vals.map((l, i) => `${x(steps[i]).toFixed(1)},${y(l).toFixed(1)}`).join(' ');
  const ticks = [0, 0.5, 1];
  const yTicks = ticks
    .map((t) => {
      const v = y0 + t * (y1 - y0);
      return `<line x1="${margin.left}" x2="${width - margin.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#eee"/><text x="${margin.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${fmt(v)}</text>`;
    })
    .join('');
  const xTicks = ticks
    .map((t) => {
      const v = x0 + t * (x1 - x0);
      return `<text x="${x(v).toFixed(1)}" y="${height - margin.bottom + 16}" text-anchor="middle">${fmt(v)}</text>`;
    })
    .join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="training loss from step ${x0} to ${x1}">` +
    `<g font-family="sans-serif" font-size="11" fill="#444">${yTicks}${xTicks}` +
    `<text x="${margin.left + plotW / 2}" y="${height - 4}" text-anchor="middle">step</text></g>` +
    `<polyline fill="none" stroke="#9ec5fe" stroke-width="1" points="${line(losses)}"/>` +
    `<polyline fill="none" stroke="#0b5ed7" stroke-width="2" points="${line(smooth(losses))}"/>` +
    `</svg>`
  );
}
