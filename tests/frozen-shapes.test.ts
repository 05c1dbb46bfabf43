// Listing entries and their files are frozen by the thousand (writeJson freezes a stage's output,
// and a watch keeps them from save to save). In V8 each frozen object that object spread made from
// an unfrozen one gets a hidden class of its own: at 100,000 items that held ~60 MB more in a
// watch, and made every property read over them megamorphic. The path mapping of listings
// (datasets/listing-paths.ts) builds them key by key instead (cache/parsed-json.ts withKeys): one
// class per kind of object, and the very same JSON text as the spread copies had (listing.json
// hashes into the lock: it must not change).
import { spawnSync } from 'node:child_process';
import { relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { withKeys } from '../src/cache/parsed-json.js';
import { makeTempDir, REPO_ROOT } from './helpers/cli.js';
import { writeOldLabFolder } from './helpers/lab-folder.js';

const tmp = makeTempDir('lorabuild-frozen-shapes-');
afterAll(tmp.cleanup);

type File = { path: string; abs: string; sha256: string; size: number };
type Entry = { id: string; image: File; captionFile: File };

describe('objects frozen by the thousand', () => {
  it('withKeys gives the keys of object spread, in its order', () => {
    const source = Object.freeze({ b: 1, a: 2, c: { d: 3 } });
    expect(JSON.stringify(withKeys(source, { a: 9, e: 5 }))).toBe(JSON.stringify({ ...source, ...{ a: 9, e: 5 } }));
    expect(JSON.stringify(withKeys(source))).toBe(JSON.stringify({ ...source }));
    expect(JSON.stringify(withKeys(source, {}))).toBe('{"b":1,"a":2,"c":{"d":3}}');
    expect(withKeys(source).c).toBe(source.c);
    expect(Object.isFrozen(withKeys(source))).toBe(false);
  });

  it('mapped listing entries and their files share one hidden class each, with the JSON text of spread copies', () => {
    const root = tmp.dir;
    const folder = `${root}/data`;
    writeOldLabFolder(folder, 300);
    const r = spawnSync(process.execPath, ['--allow-natives-syntax', `${REPO_ROOT}/tests/helpers/hidden-classes.mjs`, `${REPO_ROOT}/dist`, folder], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.entries).toBe(300);
    expect(out.portable).toEqual({ entries: 1, images: 1, captions: 1 });
    expect(out.local).toEqual({ entries: 1, images: 1 });
    // the check can tell: on the Node lorabuild is built for, spread copies each get a class once frozen
    if (Number(process.versions.node.split('.')[0]) === 20) {
      expect(out.control.entries).toBeGreaterThan(10);
      expect(out.control.images).toBeGreaterThan(10);
    }

    const sources = JSON.parse(out.sources) as Entry[];
    const mapFile = (f: File, abs: string) => ({ ...f, abs });
    const portable = sources.map((e) => ({ ...e, image: mapFile(e.image, relative(root, e.image.abs)), captionFile: mapFile(e.captionFile, relative(root, e.captionFile.abs)) }));
    expect(out.text.portable).toBe(JSON.stringify(portable));
    expect(out.text.local).toBe(JSON.stringify(sources));
    expect(JSON.parse(out.text.portable)[0].image.abs).toBe('data/image/0.png');
  });
});
