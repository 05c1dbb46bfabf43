// validate keeps its per-item checks in its item pack only (ctx.item packOnly): a cold build of
// 10,000 items spent ~4.5 s creating their files. A run whose list is short enough to be kept
// inline in the action entry (no pack), or that fails, appends them to the item journals instead:
// the next run must still find them.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tinyPng } from '../bench/lab-dataset.js';
import { makeTempDir, runCli, writeFiles, type CliResult } from './helpers/cli.js';
import { itemRecordCount } from './helpers/item-records.js';

const tmp = makeTempDir('lorabuild-validate-records-');
afterAll(tmp.cleanup);

const validated = (r: CliResult, outcome: string) => r.events.filter((e) => e.stage === 'validate:d' && e.item && e.outcome === outcome).map((e) => e.item);
const records = (dir: string) => itemRecordCount(join(dir, 'cache'), 'validate');

describe('validate item records', { timeout: 120_000 }, () => {
  it('a short list keeps its checks in the journals, and so does a failed run: the next run finds them', async () => {
    const dir = join(tmp.dir, 'small');
    const files: Record<string, string | Buffer> = { 'lorafile.yaml': 'version: 1\ndatasets:\n  d:\n    folder: d\n    rules: { too_small: off }\n' };
    for (let i = 0; i < 3; i++) {
      files[`d/image/${i}.png`] = tinyPng(i) as Buffer;
      files[`d/text/${i}.txt`] = `one-line-art, shape ${i}\n`;
    }
    writeFiles(dir, files);
    const run = () => runCli(['run', '--json'], { cwd: dir });
    const first = await run();
    expect(first.code, first.stderr).toBe(0);
    expect(records(dir)).toBe(3);
    // a caption error: validate fails, and what it checked is kept
    writeFileSync(join(dir, 'd', 'text', '1.txt'), '  \n');
    const failed = await run();
    expect(failed.code).not.toBe(0);
    expect(validated(failed, 'ran')).toEqual(['1']);
    expect(validated(failed, 'cached').sort()).toEqual(['0', '2']);
    expect(records(dir)).toBe(4);
    writeFileSync(join(dir, 'd', 'text', '2.txt'), 'one-line-art, shape two\n');
    const again = await run();
    expect(validated(again, 'ran')).toEqual(['2']);
    expect(validated(again, 'cached').sort()).toEqual(['0', '1']);
  });
});
