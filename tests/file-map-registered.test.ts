import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Cas } from '../src/cache/cas.js';
import { readTree } from '../src/cache/chunk-tree.js';
import { badFileHash, fileCount, filesDigest, registerFileMap, writeFilesTree } from '../src/engine/file-tree.js';
import { staleReasons } from '../src/engine/reasons.js';
import type { LockEntry } from '../src/engine/types.js';
import { makeTempDir } from './helpers/cli.js';

// a long map (more than FILES_INLINE_MAX files), built the way datasets/local/list.ts builds it:
// parallel arrays of sorted paths and hashes, the map registered with them
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

function registered(paths: string[], shas: string[]): Record<string, string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < paths.length; i++) files[paths[i]] = shas[i];
  registerFileMap(files, paths, shas);
  return files;
}

/** the same pairs as a plain map nobody registered (the general pass) */
const plain = (files: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(files));

/** the stale reasons as the lookup-per-key version found them (sorted lists of changed, added, removed) */
function reference(before: Record<string, string>, now: Record<string, string>): string[] {
  const changed = Object.keys(now).filter((p) => p in before && before[p] !== now[p]).sort();
  const added = Object.keys(now).filter((p) => !(p in before)).sort();
  const removed = Object.keys(before).filter((p) => !(p in now)).sort();
  const listed = (ps: string[], verb: string) => [...ps.slice(0, 5).map((p) => `${p} ${verb}`), ...(ps.length > 5 ? [`${ps.length - 5} more files ${verb}`] : [])];
  return [...listed(changed, 'changed'), ...listed(added, 'added'), ...listed(removed, 'removed')];
}

const entry = (files: Record<string, string>): LockEntry => ({ fingerprint: 'f', params: {}, files, upstream: {}, outputs: {}, meta: null, implVersion: 1 });
const reasonsOf = (before: Record<string, string>, now: Record<string, string>) => staleReasons(entry(before), { implVersion: 1, params: {}, files: now, upstream: {} });

let tmp: ReturnType<typeof makeTempDir>;
beforeEach(() => {
  tmp = makeTempDir();
});
afterEach(() => tmp.cleanup());

describe('registered file maps', () => {
  it('give the facts, digest, tree and stale reasons of the same map unregistered, save after save', () => {
    const cas = new Cas(tmp.dir);
    let paths = Array.from({ length: 5000 }, (_, i) => `data/text/${String(i).padStart(5, '0')}.txt`);
    let shas = paths.map((p) => sha(p));
    let prev = registered(paths, shas);
    const steps: ((ps: string[], ss: string[]) => void)[] = [
      (_ps, ss) => (ss[17] = sha('edit 1')), // one file changed
      (ps, ss) => (ps.splice(40, 0, 'data/text/00039b.txt'), ss.splice(40, 0, sha('new'))), // one added
      (ps, ss) => (ps.splice(3, 2), ss.splice(3, 2)), // two removed
      (ps, ss) => {
        for (let i = 100; i < 120; i++) ss[i] = sha(`many ${i}`); // more than five changed
        ps.push('data/zz.txt'), ss.push(sha('last')); // and one appended
      },
      () => {}, // the same pairs again (new arrays, same strings)
    ];
    for (const step of steps) {
      paths = [...paths];
      shas = [...shas];
      step(paths, shas);
      const now = registered(paths, shas);
      const same = plain(now);
      expect(fileCount(now)).toBe(fileCount(same));
      expect(badFileHash(now)).toBeUndefined();
      expect(filesDigest(now)).toBe(filesDigest(same));
      const tree = writeFilesTree(now, cas)!;
      expect(tree).toEqual(writeFilesTree(same, cas));
      // read back from the store: the pairs as they are now, not as a record kept from before
      expect([...readTree(cas, { root: tree.root, count: tree.count })]).toEqual(paths.map((p, i) => [p, shas[i]]));
      expect(reasonsOf(prev, now)).toEqual(reference(prev, now));
      expect(reasonsOf(plain(prev), same)).toEqual(reference(prev, now));
      prev = now;
    }
  });

  it('still find a bad hash and unsorted paths', () => {
    const paths = Array.from({ length: 5000 }, (_, i) => `p/${String(i).padStart(5, '0')}`);
    const shas = paths.map((p) => sha(p));
    registered(paths, shas);
    const bad = [...shas];
    bad[2500] = 'not a sha256';
    expect(badFileHash(registered(paths, bad))).toBe('p/02500');
    // out of order: not taken as sorted, the general pass sorts them
    const swapped = [...paths];
    [swapped[10], swapped[11]] = [swapped[11], swapped[10]];
    const swappedShas = swapped.map((p) => sha(p));
    const map = registered(swapped, swappedShas);
    expect(filesDigest(map)).toBe(filesDigest(plain(registered(paths, shas))));
    // out of order where the next path is the very string the last map had there
    const replaced = [...paths];
    replaced[1] = 'p/zzz';
    const unsorted = registered(replaced, replaced.map((p) => sha(p)));
    expect(filesDigest(unsorted)).toBe(filesDigest(plain(unsorted)));
  });
});
