// The training loss curve as an inline SVG: raw points (light) and a moving average (dark), with
// step and loss ticks. No scripts, no external resources.

/** Round tick values between lo and hi, about `count` of them, 1/2/5 x 10^k apart (whole numbers when `integer`). */
export function niceTicks(lo: number, hi: number, count: number, integer = false): { values: number[]; decimals: number } {
  if (!(hi > lo)) return { values: [lo], decimals: integer ? 0 : Math.max(0, 2 - Math.floor(Math.log10(Math.abs(lo) || 1))) };
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  if (integer) step = Math.max(1, Math.round(step));
  const values: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) values.push(Number(v.toPrecision(12)));
  return { values, decimals: integer ? 0 : Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) };
}

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
  const yt = niceTicks(y0, y1, 4);
  const yTicks = yt.values
    .map((v) => `<line x1="${margin.left}" x2="${width - margin.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#eee"/><text x="${margin.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v.toFixed(yt.decimals)}</text>`)
    .join('');
  // steps are whole numbers; a label at either edge is anchored inside the chart, never cut off
  const xt = niceTicks(x0, x1, 5, true);
  const xTicks = xt.values
    .map((v) => {
      const at = x(v);
      const anchor = at > width - margin.right - 16 ? 'end' : at < margin.left + 16 ? 'start' : 'middle';
      return `<line x1="${at.toFixed(1)}" x2="${at.toFixed(1)}" y1="${margin.top + plotH}" y2="${margin.top + plotH + 4}" stroke="#999"/><text x="${at.toFixed(1)}" y="${height - margin.bottom + 16}" text-anchor="${anchor}">${v}</text>`;
    })
    .join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="training loss from step ${x0} to ${x1}">` +
    `<g font-family="sans-serif" font-size="11" fill="#444">${yTicks}${xTicks}` +
    `<text x="${margin.left + plotW / 2}" y="${height - 4}" text-anchor="middle">step</text>` +
    `<text x="12" y="${margin.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 12 ${margin.top + plotH / 2})">loss</text></g>` +
    `<polyline fill="none" stroke="#9ec5fe" stroke-width="1" points="${line(losses)}"/>` +
    `<polyline fill="none" stroke="#0b5ed7" stroke-width="2" points="${line(smooth(losses))}"/>` +
    `</svg>`
  );
}
