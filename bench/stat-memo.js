// Stat memo load/save at 20k and 200k entries: the binary base + journal (dist/) against the old
// statmemo.json (JSON.parse of { version, entries }, as it was read before). Build first.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const { StatMemo } = await import(new URL('../dist/engine/stat-memo.js', import.meta.url).href);
const dir = mkdtempSync(join(tmpdir(), 'memo-bench-'));
const sha = (i) => createHash('sha256').update(String(i)).digest('hex');
const pathOf = (i) => `/home/someone/projects/my-lora/datasets/portraits/images/${String(i).padStart(6, '0')}.png`;
const statOf = (i) => ({ size: 10_000 + i, mtimeMs: 1_700_000_000_000 + i * 1.5, ino: 4_000_000 + i });
const best = (n, f) => {
  let min = Infinity;
  for (let r = 0; r < n; r++) {
    const t = performance.now();
    f();
    min = Math.min(min, performance.now() - t);
  }
  return min;
};

for (const n of [20_000, 200_000]) {
  const file = join(dir, `memo-${n}.bin`);
  const json = join(dir, `memo-${n}.json`);
  const entries = {};
  const memo = StatMemo.load(file);
  for (let i = 0; i < n; i++) {
    memo.record(pathOf(i), statOf(i), sha(i), true);
    entries[pathOf(i)] = [statOf(i).size, statOf(i).mtimeMs, statOf(i).ino, sha(i)];
  }
  const saveMs = best(1, () => memo.save());
  const jsonSaveMs = best(1, () => writeFileSync(json, JSON.stringify({ version: 1, entries })));
  const jsonLoad = best(7, () => JSON.parse(readFileSync(json, 'utf8')));
  const binLoad = best(7, () => StatMemo.load(file));
  const loaded = StatMemo.load(file);
  const lookups = best(3, () => {
    for (let i = 0; i < n; i++) if (loaded.lookup(pathOf(i), statOf(i)) === undefined) throw new Error('miss');
  });
  // what the old StatMemo did per lookup: a property of the parsed object, all four fields compared
  const parsed = JSON.parse(readFileSync(json, 'utf8')).entries;
  const jsonLookups = best(3, () => {
    for (let i = 0; i < n; i++) {
      const e = parsed[pathOf(i)];
      const st = statOf(i);
      if (!(e[0] === st.size && e[1] === st.mtimeMs && e[2] === st.ino && typeof e[3] === 'string')) throw new Error('miss');
    }
  });
  const one = StatMemo.load(file);
  one.record(pathOf(n + 1), statOf(n + 1), sha(n + 1), true);
  const before = statSync(`${file}.journal`).size;
  one.save();
  const appended = statSync(`${file}.journal`).size - before;
  console.log(
    `${n} entries: load ${binLoad.toFixed(1)} ms (statmemo.json: ${jsonLoad.toFixed(1)} ms); ${n} lookups ${lookups.toFixed(1)} ms (json object: ${jsonLookups.toFixed(1)} ms); ` +
      `file ${(statSync(file).size / 1e6).toFixed(2)} MB (json ${(statSync(json).size / 1e6).toFixed(2)} MB); first save (compaction) ${saveMs.toFixed(1)} ms (json stringify + write: ${jsonSaveMs.toFixed(1)} ms); one-entry save appends ${appended} bytes`,
  );
}
rmSync(dir, { recursive: true, force: true });
