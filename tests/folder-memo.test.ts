// The folder memo (src/datasets/local/folder-memo.ts, dir-names.ts): the names of unchanged
// subfolders and the layout of an unchanged list of paths are reused from the cache, and the
// listing is exactly what a run without the memo gives; a damaged memo is rebuilt, never trusted.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dirRecordFor } from '../src/datasets/local/dir-names.js';
import { draftMemoPath, folderMemoPath, formatDraftMemo, formatFolderMemo, loadFolderMemo, parseDraftMemo, parseFolderMemo } from '../src/datasets/local/folder-memo.js';
import { listLocalDataset, type LocalDatasetSource } from '../src/datasets/local/list.js';
import { walkDatasetFolderSync, type WalkFs } from '../src/datasets/local/walk.js';
import { StatMemo } from '../src/engine/stat-memo.js';
import { WalkCache } from '../src/watch/walk-cache.js';
import { makeTempDir, REPO_ROOT, writeFiles } from './helpers/cli.js';

const tmp = makeTempDir('lorabuild-folder-memo-');
afterAll(tmp.cleanup);

let serial = 0;
/** a lab dataset (image/N.png + text/N.txt) and a cache folder of its own */
function labDataset(n: number): { root: string; cache: string } {
  const base = join(tmp.dir, `case-${serial++}`);
  const root = join(base, 'data');
  const files: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    files[`image/${i}.png`] = `png ${i}`;
    files[`text/${i}.txt`] = `caption ${i}\n`;
  }
  writeFiles(root, files);
  return { root, cache: join(base, 'cache') };
}

/**
 * Folders changed less than 100 ms ago (2 s where timestamps are whole seconds) are not trusted
 * (racy): tests wait that out before relying on a record.
 */
const coarseTimestamps = (() => {
  const probe = join(tmp.dir, 'probe');
  writeFileSync(probe, '');
  return Number.isInteger(fs.statSync(probe).mtimeMs);
})();
const settle = () => new Promise((r) => setTimeout(r, coarseTimestamps ? 2100 : 150));

/** the real file system, counting readdir calls per folder */
function countingFs(): WalkFs & { reads: string[] } {
  const reads: string[] = [];
  const io = {
    reads,
    statSync: fs.statSync,
    lstatSync: fs.lstatSync,
    realpathSync: fs.realpathSync,
    readdirSync: ((p: string, o?: unknown) => {
      reads.push(p);
      return (fs.readdirSync as (p: string, o?: unknown) => unknown)(p, o);
    }) as typeof fs.readdirSync,
  };
  return io;
}

function source(root: string, cacheDir: string | undefined, layout: LocalDatasetSource['layout'] = 'auto'): LocalDatasetSource {
  const memo = StatMemo.inMemory();
  return {
    abs: root,
    folder: 'data',
    layout,
    captionColumn: 'text',
    hashFile: (abs, stat) => memo.hashFile(abs, { stat }),
    knownHash: (abs, stat) => memo.lookup(abs, stat),
    ...(cacheDir ? { cacheDir } : {}),
  };
}

/** the listing with the memo (twice: writing it, then reading it) equals the listing without */
async function expectSameAsFresh(root: string, cache: string, layout: LocalDatasetSource['layout'] = 'auto'): Promise<void> {
  const fresh = await listLocalDataset(source(root, undefined, layout));
  expect(await listLocalDataset(source(root, cache, layout))).toEqual(fresh);
  expect(await listLocalDataset(source(root, cache, layout))).toEqual(fresh);
}

describe('walk with remembered folder names', () => {
  it('reads no unchanged folder, but sees a content edit of a file', async () => {
    const { root } = labDataset(5);
    await settle();
    const first = walkDatasetFolderSync(root, 'data');
    expect([...first.dirs.keys()].sort()).toEqual(['', 'image', 'text']);
    writeFileSync(join(root, 'text', '3.txt'), 'a much longer caption than before\n');
    const io = countingFs();
    const again = walkDatasetFolderSync(root, 'data', first.dirs, io);
    expect(io.reads).toEqual([]);
    expect(again.dirsRead).toBe(0);
    const edited = again.files.find((f) => f.rel === 'text/3.txt')!;
    expect(edited.size).toBe(fs.statSync(join(root, 'text', '3.txt')).size);
    expect(again.files).toEqual(walkDatasetFolderSync(root, 'data').files);
  });

  it('reads again exactly the folders where files or folders were added, removed or renamed', async () => {
    const { root } = labDataset(4);
    await settle();
    let known = walkDatasetFolderSync(root, 'data').dirs;
    /** makes a change, walks with the records so far (expecting `reread` read), then lets the folders settle */
    const step = async (change: () => void, reread: string[]) => {
      change();
      const io = countingFs();
      const walk = walkDatasetFolderSync(root, 'data', known, io);
      expect(io.reads.map((p) => p.slice(root.length)).sort()).toEqual(reread);
      expect(walk.files).toEqual(walkDatasetFolderSync(root, 'data').files);
      await settle();
      // the folders just changed were too fresh to keep a record of: the next walk keeps one
      known = walkDatasetFolderSync(root, 'data', walk.dirs).dirs;
      return walk.files.map((f) => f.rel);
    };
    expect(await step(() => writeFileSync(join(root, 'text', '9.txt'), 'new\n'), ['/text'])).toContain('text/9.txt');
    expect(await step(() => unlinkSync(join(root, 'image', '0.png')), ['/image'])).not.toContain('image/0.png');
    const renamed = await step(() => renameSync(join(root, 'text', '1.txt'), join(root, 'text', '10.txt')), ['/text']);
    expect(renamed).toContain('text/10.txt');
    expect(renamed).not.toContain('text/1.txt');
    // a new folder: its parent changed, and the new folder is read for the first time
    expect(await step(() => writeFiles(root, { 'extra/a.txt': 'x' }), ['', '/extra'])).toContain('extra/a.txt');
    // a folder renamed: the parent is read; the folder itself is unchanged but now known under another path
    const moved = await step(() => renameSync(join(root, 'extra'), join(root, 'more')), ['', '/more']);
    expect(moved).toContain('more/a.txt');
    expect(moved).not.toContain('extra/a.txt');
    const gone = await step(() => rmSync(join(root, 'more'), { recursive: true }), ['']);
    expect(gone).not.toContain('more/a.txt');
    expect(known.has('more')).toBe(false);
    // a hidden file appearing changes its folder (read again) but not the listing
    expect(await step(() => writeFileSync(join(root, 'text', '.swp'), 'x'), ['/text'])).toEqual(gone);
    // nothing changed: nothing read
    expect(await step(() => undefined, [])).toEqual(gone);
  });

  it('keeps no record of a folder changed just before it was read (its next change may keep the same timestamp)', async () => {
    const { root } = labDataset(2);
    writeFileSync(join(root, 'text', '5.txt'), 'x');
    const walk = walkDatasetFolderSync(root, 'data');
    // (a machine too busy to walk within 100 ms of the write proves nothing here; the rule is checked below)
    if (Date.now() - fs.statSync(join(root, 'text')).ctimeMs < 100) {
      expect(walk.dirs.has('text')).toBe(false);
      const io = countingFs();
      walkDatasetFolderSync(root, 'data', walk.dirs, io);
      expect(io.reads.map((p) => p.slice(root.length))).toContain('/text');
    }
    // the rule itself, on made-up stats: ctime counts (touch -d can set mtime back, never ctime)
    const st = { dev: 1, ino: 2, mtimeMs: 1_000.5, ctimeMs: 50_000.5 } as fs.Stats;
    expect(dirRecordFor(st, ['a'], 50_050)).toBeUndefined();
    expect(dirRecordFor(st, ['a'], 50_200)?.names).toEqual(['a']);
    // whole-second timestamps (FAT, some network file systems): two seconds
    const coarse = { dev: 1, ino: 2, mtimeMs: 40_000, ctimeMs: 40_000 } as fs.Stats;
    expect(dirRecordFor(coarse, ['a'], 41_500)).toBeUndefined();
    expect(dirRecordFor(coarse, ['a'], 42_100)).toBeDefined();
  });

  it('reads a folder again whose mtime was set back after a change (its ctime moved)', async () => {
    const { root } = labDataset(3);
    const text = join(root, 'text');
    // whole seconds, which utimes sets exactly
    fs.utimesSync(text, 1_600_000_000, 1_600_000_000);
    await settle();
    const first = walkDatasetFolderSync(root, 'data');
    expect(first.dirs.get('text')?.mtimeMs).toBe(1_600_000_000_000);
    writeFileSync(join(text, '8.txt'), 'added\n');
    fs.utimesSync(text, 1_600_000_000, 1_600_000_000);
    expect(fs.statSync(text).mtimeMs).toBe(1_600_000_000_000);
    const io = countingFs();
    const walk = walkDatasetFolderSync(root, 'data', first.dirs, io);
    expect(io.reads.map((p) => p.slice(root.length))).toEqual(['/text']);
    expect(walk.files.map((f) => f.rel)).toContain('text/8.txt');
  });

  it('reads a folder again when a remembered name is gone although its stat matched (a wrong record)', async () => {
    const { root } = labDataset(3);
    await settle();
    const first = walkDatasetFolderSync(root, 'data');
    const text = first.dirs.get('text')!;
    const lying = new Map(first.dirs);
    lying.set('text', { ...text, names: [...text.names, '77.txt'] });
    const io = countingFs();
    const walk = walkDatasetFolderSync(root, 'data', lying, io);
    expect(walk.files).toEqual(first.files);
    expect(io.reads.map((p) => p.slice(root.length))).toEqual(['/text']);
  });

  it('follows symbolic links inside the folder on every walk, and never through a remembered name', async () => {
    const { root } = labDataset(2);
    writeFiles(root, { 'pool/a/x.png': 'a', 'pool/b/y.png': 'b', 'pool/b/z.png': 'c' });
    symlinkSync(join(root, 'pool', 'a'), join(root, 'image', 'linked'));
    await settle();
    let known = walkDatasetFolderSync(root, 'data').dirs;
    const walkAgain = () => {
      const walk = walkDatasetFolderSync(root, 'data', known);
      expect(walk.files).toEqual(walkDatasetFolderSync(root, 'data').files);
      expect(walk.followedLinks).toBe(true);
      known = walk.dirs;
      return walk.files.map((f) => f.rel);
    };
    expect(walkAgain()).toContain('image/linked/x.png');
    // the link pointed elsewhere (same name, same parent folder contents once settled)
    unlinkSync(join(root, 'image', 'linked'));
    symlinkSync(join(root, 'pool', 'b'), join(root, 'image', 'linked'));
    await settle();
    const retargeted = walkAgain();
    expect(retargeted).toContain('image/linked/z.png');
    expect(retargeted).not.toContain('image/linked/x.png');
    // a file added in the link's target folder (nothing changes where the link is)
    await settle();
    writeFileSync(join(root, 'pool', 'b', 'w.png'), 'w');
    expect(walkAgain()).toContain('image/linked/w.png');
    // a link inside an unchanged folder now leading outside: still refused
    const outside = join(tmp.dir, `outside-${serial++}`);
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret.txt'), 's');
    rmSync(join(root, 'pool', 'b'), { recursive: true });
    symlinkSync(outside, join(root, 'pool', 'b'));
    expect(() => walkDatasetFolderSync(root, 'data', known)).toThrow(/outside the dataset folder/);
  });
});

describe('listing with the folder memo', () => {
  it('is the listing a run without memo gives, through edits, adds, deletes, renames and caption edits', async () => {
    const { root, cache } = labDataset(12);
    writeFiles(root, { 'notes.md': 'stray' });
    await expectSameAsFresh(root, cache);
    const changes: (() => void)[] = [
      () => writeFileSync(join(root, 'text', '4.txt'), 'an edited caption\n'),
      () => writeFileSync(join(root, 'image', '4.png'), 'another image, longer'),
      () => writeFileSync(join(root, 'text', '12.txt'), 'a caption without an image\n'),
      () => writeFileSync(join(root, 'image', '13.png'), 'an image without a caption'),
      () => unlinkSync(join(root, 'text', '2.txt')),
      () => renameSync(join(root, 'image', '5.png'), join(root, 'image', '50.png')),
      () => renameSync(join(root, 'text', '6.txt'), join(root, 'text', '6.caption')),
      () => writeFiles(root, { 'image/sub/deeper.png': 'nested' }),
      () => writeFileSync(join(root, 'image', '7.jpg'), 'a second image for id 7'),
    ];
    for (const change of changes) {
      change();
      await expectSameAsFresh(root, cache);
      await settle();
      await expectSameAsFresh(root, cache);
    }
  });

  it('is the same for kohya and imagefolder folders', async () => {
    const base = join(tmp.dir, `layouts-${serial++}`);
    const kohya = join(base, 'kohya');
    writeFiles(kohya, { '10_cat/a.png': 'a', '10_cat/a.txt': 'cat a', '10_cat/a.caption': 'other', '5_dog/b.jpg': 'b', '5_dog/b.txt': 'dog', 'c.webp': 'c' });
    const hf = join(base, 'hf');
    writeFiles(hf, { 'metadata.jsonl': '{"file_name": "0.png", "text": "zero"}\n{"file_name": "1.png", "text": "one"}\n', '0.png': '0', '1.png': '1', '2.png': '2' });
    await settle();
    await expectSameAsFresh(kohya, join(base, 'cache'));
    await expectSameAsFresh(kohya, join(base, 'cache'), 'kohya');
    await expectSameAsFresh(hf, join(base, 'cache'));
    // the same paths read in another layout: another draft
    const { root: lab, cache } = labDataset(3);
    await expectSameAsFresh(lab, cache, 'auto');
    await expectSameAsFresh(lab, cache, 'kohya');
    expect((await listLocalDataset(source(lab, cache, 'kohya'))).listing.layout).toBe('kohya');
    // a caption edited in the metadata: the paths are the same, the entries are not
    writeFileSync(join(hf, 'metadata.jsonl'), '{"file_name": "0.png", "text": "ZERO"}\n{"file_name": "2.png", "text": "two"}\n');
    await expectSameAsFresh(hf, join(base, 'cache'));
    const listed = await listLocalDataset(source(hf, join(base, 'cache')));
    expect(listed.listing.entries.map((e) => e.captionText?.text)).toEqual(['ZERO', 'two', undefined]);
  });

  it('writes the memo once and leaves it alone on an unchanged folder', async () => {
    const { root, cache } = labDataset(3);
    await settle();
    await listLocalDataset(source(root, cache));
    const file = folderMemoPath(cache, root);
    const draftFile = draftMemoPath(cache, root);
    const written = [fs.statSync(file), fs.statSync(draftFile)];
    await listLocalDataset(source(root, cache));
    writeFileSync(join(root, 'text', '1.txt'), 'a caption edit changes no folder\n');
    await listLocalDataset(source(root, cache));
    const after = [fs.statSync(file), fs.statSync(draftFile)];
    expect(after.map((st) => [st.ino, st.mtimeMs])).toEqual(written.map((st) => [st.ino, st.mtimeMs]));
    // and what it holds is what the next run trusts
    const memo = parseFolderMemo(readFileSync(file, 'utf8'), root)!;
    expect([...memo.dirs.keys()].sort()).toEqual(['', 'image', 'text']);
    expect(memo.dirs.get('text')!.names).toEqual(['0.txt', '1.txt', '2.txt']);
    expect(parseDraftMemo(readFileSync(draftFile, 'utf8'), root)?.layout).toBe('lab');
    expect(parseFolderMemo(readFileSync(file, 'utf8'), `${root}-elsewhere`)).toBeUndefined();
    expect(parseDraftMemo(readFileSync(draftFile, 'utf8'), `${root}-elsewhere`)).toBeUndefined();
  });

  type MemoFile = 'memo' | 'draft';
  const damages: [string, (file: string) => void, MemoFile[]][] = [
    ['truncated', (f) => writeFileSync(f, readFileSync(f).subarray(0, Math.floor(readFileSync(f).length / 2))), ['memo', 'draft']],
    ['one byte flipped', (f) => {
      const bytes = readFileSync(f);
      bytes[bytes.length - 20] ^= 0x01;
      writeFileSync(f, bytes);
    }, ['memo', 'draft']],
    ['an index changed, still valid JSON', (f) => {
      const text = readFileSync(f, 'utf8');
      expect(text).toContain('["1",1,7]');
      writeFileSync(f, text.replace('["1",1,7]', '["1",2,7]'));
    }, ['draft']],
    ['a name changed, still valid JSON', (f) => {
      const text = readFileSync(f, 'utf8');
      expect(text).toContain('4.txt\\n5.txt');
      writeFileSync(f, text.replace('4.txt\\n5.txt', '4.txt\\n6.txt'));
    }, ['memo']],
    ['garbage', (f) => writeFileSync(f, Buffer.from([0xff, 0x00, 0x13, 0x37, 0x0a, 0x7b])), ['memo', 'draft']],
    ['empty', (f) => writeFileSync(f, ''), ['memo', 'draft']],
    ['a folder in its place', (f) => (rmSync(f), mkdirSync(join(f, 'inside'), { recursive: true })), ['memo', 'draft']],
  ];
  for (const [what, damage, targets] of damages) {
    for (const target of targets) {
      it(`discards a damaged ${target} file (${what}), lists correctly and writes a good one`, async () => {
        const { root, cache } = labDataset(6);
        await settle();
        const fresh = await listLocalDataset(source(root, undefined));
        await listLocalDataset(source(root, cache));
        const file = target === 'memo' ? folderMemoPath(cache, root) : draftMemoPath(cache, root);
        damage(file);
        // a caption edit too (the same paths, so a trusted damaged draft would be used)
        writeFileSync(join(root, 'text', '5.txt'), 'new caption\n');
        const expected = await listLocalDataset(source(root, undefined));
        expect(expected).not.toEqual(fresh);
        expect(await listLocalDataset(source(root, cache))).toEqual(expected);
        await settle();
        expect(await listLocalDataset(source(root, cache))).toEqual(expected);
        expect(fs.lstatSync(file).isFile()).toBe(true);
        const parse = target === 'memo' ? parseFolderMemo : parseDraftMemo;
        expect(parse(readFileSync(file, 'utf8'), root)).toBeDefined();
      });
    }
  }

  it('never trusts a memo whose checksum matches but whose draft does not fit the folder', async () => {
    const { root, cache } = labDataset(4);
    await settle();
    const expected = await listLocalDataset(source(root, undefined));
    await listLocalDataset(source(root, cache));
    const file = folderMemoPath(cache, root);
    const memo = parseFolderMemo(readFileSync(file, 'utf8'), root)!;
    const draftFile = draftMemoPath(cache, root);
    const draft = parseDraftMemo(readFileSync(draftFile, 'utf8'), root)!;
    // entries pointing past the end of the walk (as from another folder with the same digest: impossible, but checked)
    writeFileSync(draftFile, formatDraftMemo(root, { ...draft, entries: [['0', 99, 98]] }));
    expect(await listLocalDataset(source(root, cache))).toEqual(expected);
    // names that are not names (a path, a hidden file): the memo is refused as a whole
    writeFileSync(file, formatFolderMemo(root, { dirs: new Map([['', { ...memo.dirs.get('')!, names: ['../etc'] }]]) }));
    expect(loadFolderMemo(file, root).dirs.size).toBe(0);
    expect(await listLocalDataset(source(root, cache))).toEqual(expected);
  });

  it('a writer killed with SIGKILL while saving memos leaves one that is whole or none', async () => {
    const { root, cache } = labDataset(50);
    await settle();
    const expected = await listLocalDataset(source(root, undefined));
    await listLocalDataset(source(root, cache));
    const file = folderMemoPath(cache, root);
    const memo = parseFolderMemo(readFileSync(file, 'utf8'), root)!;
    // two memos of very different sizes, saved over each other as fast as possible
    const small = formatFolderMemo(root, { dirs: new Map() });
    const big = formatFolderMemo(root, { dirs: new Map([...memo.dirs, ['many', { ...memo.dirs.get('')!, names: Array.from({ length: 200_000 }, (_, i) => `n${i}`) }]]) });
    const sources = [join(tmp.dir, `small-${serial}`), join(tmp.dir, `big-${serial++}`)];
    writeFileSync(sources[0], small);
    writeFileSync(sources[1], big);
    const script = `
      const { readFileSync } = await import('node:fs');
      const { writeOwnedFileAtomic } = await import(${JSON.stringify(join(REPO_ROOT, 'dist', 'cache', 'safe-fs.js'))});
      const [cache, file, small, big] = JSON.parse(process.argv[1]);
      const a = readFileSync(small, 'utf8');
      const b = readFileSync(big, 'utf8');
      process.stdout.write('started\\n');
      for (let i = 0; ; i++) writeOwnedFileAtomic(cache, file, i % 2 ? a : b);
    `;
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, JSON.stringify([cache, file, ...sources])], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((r) => child.stdout.once('data', () => r()));
      await new Promise((r) => setTimeout(r, 30 + round * 40));
      child.kill('SIGKILL');
      await new Promise((r) => child.on('close', r));
      const text = readFileSync(file, 'utf8');
      expect([small, big]).toContain(text);
      expect(await listLocalDataset(source(root, cache))).toEqual(expected);
    }
  });

  it("watch's walk cache keeps its folder names in the same memo that `lorabuild run` reads", async () => {
    const { root, cache } = labDataset(4);
    await settle();
    const walks = new WalkCache();
    walks.useCache(cache);
    await walks.walk(root, 'data');
    const file = folderMemoPath(cache, root);
    const io = countingFs();
    walkDatasetFolderSync(root, 'data', loadFolderMemo(file, root).dirs, io);
    expect(io.reads).toEqual([]);
    // a file added: the watcher's notice drops the listing, the next walk sees the file and the memo follows
    writeFileSync(join(root, 'text', '7.txt'), 'seven\n');
    walks.changed(join(root, 'text', '7.txt'), 'add');
    await settle();
    expect((await walks.walk(root, 'data')).map((f) => f.rel)).toContain('text/7.txt');
    await walks.walk(root, 'data');
    walks.changed(join(root, 'text'), 'addDir');
    expect(await walks.walk(root, 'data')).toEqual(walkDatasetFolderSync(root, 'data').files);
    await expectSameAsFresh(root, cache);
  });
});

describe('folder memos in cache verify and gc', () => {
  it('verify removes a damaged memo and gc the memo of a folder that is gone; runs rebuild them', async () => {
    const { runCli } = await import('./helpers/cli.js');
    const base = join(tmp.dir, `case-${serial++}`);
    const files: Record<string, string> = { 'lorafile.yaml': 'version: 1\ndatasets:\n  a:\n    folder: a\n  b:\n    folder: b\n' };
    for (const ds of ['a', 'b']) for (let i = 0; i < 3; i++) files[`${ds}/text/${i}.txt`] = `caption ${i}\n`;
    writeFiles(base, files);
    const env = { LORABUILD_CACHE: join(base, 'cache') };
    // fetch only: these folders hold no images, which prepare would refuse
    expect((await runCli(['run', 'fetch:a', 'fetch:b'], { cwd: base, env })).code).toBe(0);
    const memoA = folderMemoPath(join(base, 'cache'), join(base, 'a'));
    const memoB = folderMemoPath(join(base, 'cache'), join(base, 'b'));
    expect(fs.existsSync(memoA) && fs.existsSync(memoB)).toBe(true);

    writeFileSync(memoA, readFileSync(memoA, 'utf8').replace(/0\.txt/, '9.txt'));
    const verify = await runCli(['cache', 'verify'], { cwd: base, env });
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/removed folders\/[0-9a-f]+\.memo: a damaged folder memo \(its checksum does not match its contents\)/);
    expect(fs.existsSync(memoA)).toBe(false);
    expect(fs.existsSync(memoB)).toBe(true);
    expect((await runCli(['cache', 'verify'], { cwd: base, env })).code).toBe(0);

    const draftB = draftMemoPath(join(base, 'cache'), join(base, 'b'));
    expect(fs.existsSync(draftB)).toBe(true);
    rmSync(join(base, 'b'), { recursive: true });
    const gc = await runCli(['cache', 'gc'], { cwd: base, env });
    expect(gc.code, gc.stderr).toBe(0);
    // b's names and its draft
    expect(gc.stdout).toContain('2 folder memos');
    expect(fs.existsSync(memoB) || fs.existsSync(draftB)).toBe(false);
    expect(fs.existsSync(draftMemoPath(join(base, 'cache'), join(base, 'a')))).toBe(true);
    expect((await runCli(['run', 'fetch:a'], { cwd: base, env })).code).toBe(0);
    expect(fs.existsSync(memoA)).toBe(true);
  }, 120_000);
});
