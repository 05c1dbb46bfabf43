// Resumable training states, indexed by the training key without `steps` ("base key"; with it for a
// cosine schedule), so that growing `steps` continues from the longest earlier run, and a rerun
// after an interruption from the step it stopped at, instead of starting over. The index lives in
// <cache>/train-resume/<base key>.json and is rewritten atomically; the states and LoRA files it
// names are CAS blobs (the LoRAs are stage outputs; the states are blobs the train stage
// references, never materialized into out/).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../cache/atomic.js';

export interface TrainRecord {
  /** steps trained */
  steps: number;
  /** true when the run reached its target; false for a state written on cancellation */
  complete: boolean;
  /** CAS hash of the resumable state (optimizer, RNG, step, LoRA weights) */
  state: string;
  /** CAS hash of the final LoRA (complete runs) */
  final?: string;
  /** checkpoint step -> CAS hash of that LoRA */
  checkpoints: Record<string, string>;
  lossCurve: [number, number][];
  peakMemory?: number;
  /** settings advice and settings the worker could not honour, for the report */
  warnings?: string[];
}

interface IndexFile {
  version: 1;
  records: TrainRecord[];
}

export class ResumeIndex {
  private readonly file: string;

  constructor(cacheDir: string, baseKey: string) {
    this.file = join(cacheDir, 'train-resume', baseKey.slice(0, 2), `${baseKey}.json`);
  }

  records(): TrainRecord[] {
    if (!existsSync(this.file)) return [];
    try {
      const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as IndexFile;
      return parsed.version === 1 && Array.isArray(parsed.records) ? parsed.records : [];
    } catch {
      // a damaged index only costs a retrain
      return [];
    }
  }

  /** A complete run of exactly `steps` whose blobs are all still present. */
  exact(steps: number, hasBlob: (sha: string) => boolean): TrainRecord | undefined {
    return this.records().find((r) => r.complete && r.steps === steps && r.final !== undefined && hasBlob(r.final) && hasBlob(r.state) && Object.values(r.checkpoints).every(hasBlob));
  }

  /** The longest earlier run (complete or interrupted) shorter than `steps` with its blobs present. */
  bestStart(steps: number, hasBlob: (sha: string) => boolean): TrainRecord | undefined {
    return this.records()
      .filter((r) => r.steps < steps && r.steps > 0 && hasBlob(r.state) && Object.values(r.checkpoints).every(hasBlob))
      .sort((a, b) => b.steps - a.steps || Number(b.complete) - Number(a.complete))[0];
  }

  add(record: TrainRecord): void {
    const records = this.records().filter((r) => !(r.steps === record.steps && (r.complete === record.complete || record.complete)));
    records.push(record);
    records.sort((a, b) => a.steps - b.steps);
    writeFileAtomic(this.file, `${JSON.stringify({ version: 1, records } satisfies IndexFile, null, 1)}\n`);
  }
}
