// Which BLAS the worker's torch really uses. torch's own build string is not enough: Debian's torch
// says BLAS_INFO=generic and calls whatever libblas.so.3 the system's alternatives point to, which
// is OpenBLAS when libopenblas0-pthread is installed and the ~30x slower reference BLAS otherwise.
// On Linux the libraries mapped into the worker process tell the truth.
import { readFile } from 'node:fs/promises';
import { realpathSync } from 'node:fs';

export interface BlasVerdict {
  name: 'OpenBLAS' | 'MKL' | 'BLIS' | 'Accelerate' | 'reference BLAS' | 'unknown';
  fast: boolean | null;
  /** the library file it was recognised from, or the torch build string */
  evidence: string;
}

function realpath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** Classifies the shared libraries of a /proc/PID/maps text. */
export function blasFromMaps(maps: string, resolve: (path: string) => string = realpath): BlasVerdict | null {
  const libraries = new Set<string>();
  for (const line of maps.split('\n')) {
    const path = line.trim().split(/\s+/).slice(5).join(' ');
    if (path.startsWith('/') && /\.so(\.|$)/.test(path)) libraries.add(path);
  }
  const known: [RegExp, BlasVerdict['name']][] = [
    [/openblas/i, 'OpenBLAS'],
    [/libmkl_/i, 'MKL'],
    [/libblis/i, 'BLIS'],
  ];
  for (const lib of libraries) {
    const real = resolve(lib);
    for (const [pattern, name] of known) if (pattern.test(real)) return { name, fast: true, evidence: real };
  }
  for (const lib of libraries) {
    if (/\/libblas\.so/.test(lib)) return { name: 'reference BLAS', fast: false, evidence: resolve(lib) };
  }
  return null;
}

/** From torch's build string alone (other systems): only explicit library names count. */
export function blasFromBuildInfo(info: string): BlasVerdict {
  if (/BLAS_INFO=(open|openblas)/i.test(info)) return { name: 'OpenBLAS', fast: true, evidence: info };
  if (/BLAS_INFO=mkl/i.test(info)) return { name: 'MKL', fast: true, evidence: info };
  if (/BLAS_INFO=accelerate/i.test(info)) return { name: 'Accelerate', fast: true, evidence: info };
  return { name: 'unknown', fast: null, evidence: info };
}

export async function workerBlas(pid: number | undefined, buildInfo: string): Promise<BlasVerdict> {
  if (pid !== undefined && process.platform === 'linux') {
    const maps = await readFile(`/proc/${pid}/maps`, 'utf8').catch(() => null);
    const verdict = maps === null ? null : blasFromMaps(maps);
    if (verdict) return verdict;
  }
  return blasFromBuildInfo(buildInfo);
}
