// The action cache: fingerprint -> what the stage produced. Every fingerprint ever built is kept
// (until gc), so going back to an earlier input set restores its outputs without running anything.
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Json, StageOutputs } from '../engine/types.js';
import { readRegularFileSync, writeOwnedFileAtomic } from './safe-fs.js';
import { CacheLayout } from './layout.js';

export interface ActionEntry {
  version: 1;
  stage: string;
  kind: string;
  fingerprint: string;
  params: Record<string, Json>;
  /** fingerprints of the upstream stages consumed */
  upstream: Record<string, string>;
  outputs: StageOutputs;
  /** every blob the outputs depend on besides outputs.files (e.g. images a manifest names) */
  refs: string[];
  /** item memo entries used ("kind/keyhash"): gc keeps them while this entry lives */
  items: string[];
  createdAt: string;
  durationMs: number;
}

export class ActionCache {
  readonly layout: CacheLayout;
  constructor(root: string) {
    this.layout = new CacheLayout(root);
  }

  get(fingerprint: string): ActionEntry | undefined {
    try {
      const entry = JSON.parse(readRegularFileSync(this.layout.action(fingerprint), 'utf8')) as ActionEntry;
      return entry.version === 1 && entry.fingerprint === fingerprint ? entry : undefined;
    } catch {
      return undefined;
    }
  }

  has(fingerprint: string): boolean {
    try {
      return statSync(this.layout.action(fingerprint)).isFile();
    } catch {
      return false;
    }
  }

  put(entry: ActionEntry): void {
    writeOwnedFileAtomic(this.layout.root, this.layout.action(entry.fingerprint), JSON.stringify(entry));
  }

  remove(fingerprint: string): void {
    rmSync(this.layout.action(fingerprint), { force: true });
    rmSync(this.layout.log(fingerprint), { force: true });
  }

  /** every entry in the cache (unreadable ones are skipped) */
  *all(): Generator<ActionEntry> {
    let shards: string[];
    try {
      shards = readdirSync(this.layout.actionsDir);
    } catch {
      return;
    }
    for (const shard of shards.sort()) {
      let names: string[];
      try {
        names = readdirSync(join(this.layout.actionsDir, shard)).sort();
      } catch {
        continue; // not a folder: damage that `cache verify` removes
      }
      for (const name of names) {
        if (!name.endsWith('.json')) continue;
        const entry = this.get(name.slice(0, -'.json'.length));
        if (entry) yield entry;
      }
    }
  }
}
