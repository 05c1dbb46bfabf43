// Remembers the worker's hello (versions, device) so that fingerprinting a train or render stage
// does not start Python and import torch (seconds) on every `lorabuild status` or no-op run.
// An entry is keyed by what selects the interpreter (lorafile python:, LORABUILD_PYTHON, model
// paths, PATH) and is valid only while the interpreter binary, torch's version file and the
// worker package's version file are unchanged (size + mtime). Anything else re-probes.
import { realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../cache/atomic.js';
import { canonicalHash } from '../engine/canonical.js';
import type { Json } from '../engine/types.js';
import type { HelloResult } from './client.js';
import { workerPackageDir } from './python.js';
import { readRegularFileSync } from '../cache/safe-fs.js';

export interface InterpreterSelection {
  configured: string | null;
  envPython: string | null;
  modelPaths: string[];
  path: string | null;
}

interface MemoEntry {
  python: string;
  stamps: Record<string, string>;
  hello: HelloResult;
}

type MemoFile = Record<string, MemoEntry>;

function stamp(file: string): string | null {
  try {
    const st = statSync(realpathSync(file));
    return `${st.size}:${st.mtimeMs}`;
  } catch {
    return null;
  }
}

/** The files whose change invalidates a remembered hello. */
export function stampedFiles(python: string, torchFile: string): string[] {
  return [python, join(dirname(torchFile), 'version.py'), join(workerPackageDir(), 'lorabuild_worker', '__init__.py')];
}

export class HelloMemo {
  private readonly file: string;

  constructor(cacheDir: string) {
    this.file = join(cacheDir, 'worker-hello.json');
  }

  private read(): MemoFile {
    try {
      return JSON.parse(readRegularFileSync(this.file, 'utf8')) as MemoFile;
    } catch {
      return {};
    }
  }

  lookup(selection: InterpreterSelection): { python: string; hello: HelloResult } | null {
    const entry = this.read()[canonicalHash(selection as unknown as Json)];
    if (!entry) return null;
    for (const [file, expected] of Object.entries(entry.stamps)) if (stamp(file) !== expected) return null;
    return { python: entry.python, hello: entry.hello };
  }

  remember(selection: InterpreterSelection, python: string, torchFile: string, hello: HelloResult): void {
    const stamps: Record<string, string> = {};
    for (const file of stampedFiles(python, torchFile)) {
      const s = stamp(file);
      if (s === null) return; // cannot tell when it would go stale: do not remember
      stamps[file] = s;
    }
    const memo = this.read();
    memo[canonicalHash(selection as unknown as Json)] = { python, stamps, hello };
    writeFileAtomic(this.file, `${JSON.stringify(memo, null, 1)}\n`);
  }
}
