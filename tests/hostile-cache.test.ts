// Cache damage, generated: every kind of thing that can be at a path the cache owns (a folder, a
// link, a FIFO, garbage, truncation, a file where a folder belongs) at blobs, store folders, action
// entries, item memos and the memo files. `lorabuild cache verify` must repair it (exit 1, then a
// second verify is clean, exit 0) without a crash or a hang, and the next `lorabuild run` must work.
// A few kinds are also given to `run` directly, without a verify first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { makeTempDir, runCli, writeFiles } from './helpers/cli.js';
import { Tally, withLimit } from './helpers/hostile.js';

const LORAFILE = 'version: 1\ndatasets:\n  ds:\n    folder: ds\n    layout: lab\n    rules: { min_size: 16 }\n';

let tmp: { dir: string; cleanup: () => void };
let built: string;
const tally = new Tally('cache damage');
beforeAll(async () => {
  tmp = makeTempDir('lorabuild-hostile-cache-');
  built = join(tmp.dir, 'built');
  const files: Record<string, string | Buffer> = { 'lorafile.yaml': LORAFILE };
  for (let i = 0; i < 3; i++) {
    files[`ds/image/${i}.png`] = await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 40 * i, g: 80, b: 120 } } }).png().toBuffer();
    files[`ds/text/${i}.txt`] = `a drawing number ${i}\n`;
  }
  writeFiles(built, files);
  const r = await runCli(['run'], { cwd: built });
  expect(r.code, r.stdout + r.stderr).toBe(0);
}, 120_000);
afterAll(() => {
  tally.report('and repaired (verify exit 1, then clean; run works)');
  tmp?.cleanup();
});

/** the first few entries of a cache folder two levels deep (shard/name) */
function entriesUnder(cache: string, store: string, limit: number): string[] {
  const out: string[] = [];
  const root = join(cache, store);
  for (const shard of readdirSync(root).sort()) {
    const dir = join(root, shard);
    if (!statSync(dir).isDirectory()) continue;
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) for (const inner of readdirSync(path).sort()) out.push(join(path, inner));
      else out.push(path);
    }
  }
  return out.slice(0, limit);
}

type Damage = (cache: string) => void;

const asFolder = (path: string) => (rmSync(path, { force: true }), mkdirSync(path));
const asLink = (path: string) => (rmSync(path, { force: true }), symlinkSync('/dev/null', path));
const asFifo = (path: string) => (rmSync(path, { force: true }), execFileSync('mkfifo', [path]));
const asGarbage = (path: string) => writeFileSync(path, '\u0000garbage{');
const truncated = (path: string) => truncateSync(path, Math.max(0, statSync(path).size - 3));
const appended = (path: string) => appendFileSync(path, 'x');
const asFile = (path: string) => (rmSync(path, { recursive: true, force: true }), writeFileSync(path, 'x'));

function damages(cache: string): [string, Damage][] {
  const cases: [string, Damage][] = [];
  const blobs = entriesUnder(cache, 'cas', 2).map((p) => p.slice(cache.length + 1));
  for (const blob of blobs) {
    for (const [what, damage] of [['a folder', asFolder], ['a link to /dev/null', asLink], ['a FIFO', asFifo], ['truncated', truncated], ['one byte longer', appended]] as const) {
      cases.push([`blob ${blob.slice(4, 14)} is ${what}`, (c) => damage(join(c, blob))]);
    }
  }
  const actions = entriesUnder(cache, 'actions', 1).map((p) => p.slice(cache.length + 1));
  const items = entriesUnder(cache, 'items', 1).map((p) => p.slice(cache.length + 1));
  for (const [store, paths] of [['action entry', actions], ['item memo', items]] as const) {
    for (const path of paths) {
      cases.push([`${store} is garbage`, (c) => asGarbage(join(c, path))]);
      cases.push([`${store} is a folder`, (c) => asFolder(join(c, path))]);
      cases.push([`${store} is a FIFO`, (c) => asFifo(join(c, path))]);
      cases.push([`${store} is valid JSON of the wrong shape`, (c) => writeFileSync(join(c, path), '{"version":1,"outputs":null}')]);
    }
  }
  for (const path of items) {
    cases.push(['an item journal has a torn tail', (c) => appendFileSync(join(c, path), '0123456789abcdef')]);
    cases.push(['an item journal has a byte changed', (c) => {
      const bytes = readFileSync(join(c, path));
      const at = bytes.indexOf('"label"');
      bytes[at + 2] ^= 0x20;
      writeFileSync(join(c, path), bytes);
    }]);
  }
  cases.push(['an item journal of an older lorabuild (a file per record)', (c) => writeFiles(join(c, 'items', 'prepare', 'ab'), { 'ab12.json': '{"label":"x","value":1,"refs":[]}' })]);
  const shard = readdirSync(join(cache, 'cas')).sort()[0];
  cases.push(['a blob shard is a file', (c) => asFile(join(c, 'cas', shard))]);
  cases.push(['the blob store is a file', (c) => asFile(join(c, 'cas'))]);
  cases.push(['the action store is a file', (c) => asFile(join(c, 'actions'))]);
  cases.push(['the item store is a file', (c) => asFile(join(c, 'items'))]);
  cases.push(['a stray file in the blob store', (c) => writeFileSync(join(c, 'cas', shard, 'not-a-hash'), 'x')]);
  cases.push(['a stray folder in the blob store', (c) => mkdirSync(join(c, 'cas', 'zz'))]);
  cases.push(['statmemo.bin is garbage', (c) => asGarbage(join(c, 'statmemo.bin'))]);
  cases.push(['statmemo.bin is truncated', (c) => truncated(join(c, 'statmemo.bin'))]);
  cases.push(['statmemo.bin is a folder', (c) => asFolder(join(c, 'statmemo.bin'))]);
  cases.push(['statmemo.bin.journal is a FIFO', (c) => asFifo(join(c, 'statmemo.bin.journal'))]);
  cases.push(['statmemo.bin.journal has a torn tail', (c) => appended(join(c, 'statmemo.bin.journal'))]);
  cases.push(['an old statmemo.json is left', (c) => asGarbage(join(c, 'statmemo.json'))]);
  cases.push(['a parsed-lock memo of the wrong shape', (c) => writeFileSync(join(c, 'lockjson', readdirSync(join(c, 'lockjson'))[0]), '{"version":1,"stages":{"x":{}}}')]);
  cases.push(['a config memo is garbage', (c) => asGarbage(join(c, 'config', readdirSync(join(c, 'config'))[0]))]);
  cases.push(['a run record is a folder', (c) => asFolder(join(c, 'runs', readdirSync(join(c, 'runs'))[0]))]);
  cases.push(['quarantine is a file', (c) => writeFileSync(join(c, 'quarantine'), 'x')]);
  cases.push(['tmp is a file', (c) => asFile(join(c, 'tmp'))]);
  cases.push(['generation is a folder', (c) => asFolder(join(c, 'generation'))]);
  cases.push(['logs is a file', (c) => asFile(join(c, 'logs'))]);
  return cases;
}

describe('cache verify repairs every kind of damage', () => {
  it('generated damage: verify repairs (exit 1), a second verify is clean (exit 0), run works', async () => {
    const cases = damages(join(built, 'cache'));
    for (const [i, [name, damage]] of cases.entries()) {
      const dir = join(tmp.dir, `case-${i}`);
      cpSync(built, dir, { recursive: true });
      const cache = join(dir, 'cache');
      try {
        damage(cache);
      } catch (err) {
        tally.add(name, 'crashed', `could not damage the cache: ${(err as Error).message}`);
        continue;
      }
      const env = { LORABUILD_CACHE: cache };
      const steps: [string[], number[]][] = [
        [['cache', 'verify'], [1]],
        [['cache', 'verify'], [0]],
        [['run'], [0]],
      ];
      let verdict: { kind: 'rejected' | 'crashed' | 'hung'; detail: string } = { kind: 'rejected', detail: '' };
      for (const [args, codes] of steps) {
        const r = await withLimit(60_000, () => runCli(args, { cwd: dir, env, timeoutMs: 60_000 }));
        if (r === 'hung' || r.signal) {
          verdict = { kind: 'hung', detail: args.join(' ') };
          break;
        }
        if (!codes.includes(r.code ?? -1) || (r.stdout + r.stderr).includes('internal error')) {
          verdict = { kind: 'crashed', detail: `${args.join(' ')}: exit ${r.code}: ${(r.stdout + r.stderr).slice(0, 400)}` };
          break;
        }
        if (args[1] === 'verify' && codes[0] === 1) verdict.detail = r.stdout.trim().split('\n')[0];
      }
      tally.add(name, verdict.kind, verdict.detail);
    }
    expect(tally.failures()).toEqual([]);
  }, 900_000);

  it('run works on a damaged cache without a verify first', async () => {
    const all = damages(join(built, 'cache'));
    const picked = [...all.filter(([n]) => /is a folder|is a FIFO|quarantine|tmp is a file/.test(n) && !/statmemo/.test(n)).slice(0, 8), ...all.filter(([n]) => /statmemo/.test(n))];
    for (const [name, damage] of picked) {
      const dir = join(tmp.dir, `run-only-${name.replace(/\W+/g, '-')}`);
      cpSync(built, dir, { recursive: true });
      damage(join(dir, 'cache'));
      const r = await withLimit(60_000, () => runCli(['run'], { cwd: dir, env: { LORABUILD_CACHE: join(dir, 'cache') }, timeoutMs: 60_000 }));
      expect(r, name).not.toBe('hung');
      if (r === 'hung') continue;
      expect(r.code, `${name}: ${r.stdout}${r.stderr}`).toBe(0);
    }
  }, 600_000);
});
