// Bytes so far, rate and time left of a download, as one short progress message:
// "12.5 of 80.0 MB, 9.8 MB/s, 0:07 left". The rate is measured over the last few seconds.

const WINDOW_MS = 5000;

export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

export class TransferMeter {
  private readonly samples: Array<[number, number]> = [];

  constructor(private readonly now: () => number = Date.now) {}

  /** Records the bytes done so far; returns the progress message. */
  update(done: number, total: number): string {
    const t = this.now();
    this.samples.push([t, done]);
    while (this.samples.length > 2 && t - this.samples[0][0] > WINDOW_MS) this.samples.shift();
    const [t0, d0] = this.samples[0];
    const rate = t > t0 ? ((done - d0) * 1000) / (t - t0) : 0;
    const parts = [`${formatBytes(done)} of ${formatBytes(total)}`];
    if (rate > 0) {
      parts.push(`${formatBytes(rate)}/s`);
      if (total > done) parts.push(`${formatDuration((total - done) / rate)} left`);
    }
    return parts.join(', ');
  }
}
