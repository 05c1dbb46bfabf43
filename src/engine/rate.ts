// Rate and time left of long work, for every progress line: measured over the last half minute
// (so a slow start, e.g. loading a model, fades out), from at least the last two updates (so a step
// that takes minutes still gets a rate).

export interface RateEstimate {
  /** units per second */
  rate?: number;
  /** seconds until done at that rate */
  eta_s?: number;
}

const WINDOW_MS = 30_000;
/** below this much measured time a rate is noise */
const MIN_SPAN_MS = 200;

export class RateMeter {
  private samples: { at: number; done: number }[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  update(done: number, total: number): RateEstimate {
    const at = this.now();
    const last = this.samples.at(-1);
    if (last && done < last.done) this.samples = []; // started over (a retry, a new phase)
    this.samples.push({ at, done });
    // keep the window, plus the newest sample before it
    while (this.samples.length > 2 && this.samples[1].at <= at - WINDOW_MS) this.samples.shift();
    const first = this.samples[0];
    const span = at - first.at;
    if (span < MIN_SPAN_MS || done <= first.done) return {};
    const rate = ((done - first.done) * 1000) / span;
    return { rate, eta_s: Math.max(0, (total - done) / rate) };
  }
}

const BYTE_UNITS = ['B', 'KB', 'MB', 'GB'];

/** "3.1 step/s", "50 s/step" (slower than one a second), "12 MB/s" */
export function formatRate(rate: number, unit = 'it'): string {
  if (unit === 'B') {
    let value = rate;
    let i = 0;
    while (value >= 1000 && i < BYTE_UNITS.length - 1) {
      value /= 1000;
      i++;
    }
    return `${value >= 100 ? value.toFixed(0) : value.toPrecision(3)} ${BYTE_UNITS[i]}/s`;
  }
  if (rate >= 1) return `${rate >= 100 ? rate.toFixed(0) : rate.toPrecision(3)} ${unit}/s`;
  const per = 1 / rate;
  const one = unit.length > 1 && unit.endsWith('s') ? unit.slice(0, -1) : unit; // "s/item", not "s/items"
  return `${per >= 100 ? per.toFixed(0) : per.toPrecision(3)} s/${one}`;
}

/** "42s", "3m 05s", "14h 02m", "2d 03h" */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d ${pad(Math.floor((s % 86400) / 3600))}h`;
}
