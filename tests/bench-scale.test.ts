// bench/scale.js end to end on a 200-image dataset: every number lands in --json, and --svg is
// well-formed XML (python's parser) with one polyline per measure. No timing assertions: the
// figures themselves belong to the benchmark.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTempDir, REPO_ROOT } from './helpers/cli.js';

const tmp = makeTempDir('lorabuild-bench-scale-');
afterAll(tmp.cleanup);

const NUMBERS = [
  'generate_s', 'load_before', 'cold_build_ms', 'prepare_items', 'prepare_items_per_s', 'noop_ms', 'noop_rss_mb', 'noop_files_hashed',
  'status_ms', 'plan_ms', 'one_edit_ms', 'one_edit_cache_bytes', 'one_edit_cache_files', 'one_edit_cache_removed', 'cache_files',
  'watch_saves', 'watch_first_build_ms', 'watch_p50_ms', 'watch_p95_ms', 'watch_max_ms', 'load_after',
];

describe('bench/scale.js', () => {
  it('measures one size through the CLI and writes the JSON and the SVG plot', () => {
    const json = join(tmp.dir, 'scale.json');
    const svg = join(tmp.dir, 'scale.svg');
    const r = spawnSync(process.execPath, ['bench/scale.js', '--sizes', '200', '--runs', '1', '--saves', '4', '--dir', join(tmp.dir, 'data'), '--json', json, '--svg', svg], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 300_000,
    });
    expect(r.status, r.stderr.slice(-2000)).toBe(0);
    expect(r.stdout).toMatch(/^\| images \|/m);
    expect(r.stdout).toMatch(/^\| 200 \|/m);

    const report = JSON.parse(readFileSync(json, 'utf8'));
    expect(report.bench).toBe('scale');
    expect(report.runs).toBe(1);
    expect(report.sizes).toHaveLength(1);
    const row = report.sizes[0];
    expect(row.error).toBeNull();
    expect(row.size).toBe(200);
    expect(row.generated).toBe(true);
    for (const field of NUMBERS) expect(typeof row[field], field).toBe('number');
    expect(Object.keys(row.cold_stage_ms).sort()).toEqual(['fetch', 'prepare', 'validate']);
    expect(row.prepare_items).toBe(200);
    expect(row.noop_runs_ms).toHaveLength(1);
    expect(row.noop_files_hashed).toBe(0);
    expect(row.noop_rss_mb).toBeGreaterThan(0);
    // the edit wrote the changed item's records and the new outputs, not nothing
    expect(row.one_edit_cache_files).toBeGreaterThan(0);
    expect(row.one_edit_cache_bytes).toBeGreaterThan(0);
    expect(row.one_edit_cache_largest.length).toBeGreaterThan(0);
    expect(row.one_edit_cache_largest[0]).toEqual({ path: expect.any(String), bytes: expect.any(Number) });
    expect(row.watch_saves).toBe(4);
    expect(row.watch_p95_ms).toBeGreaterThanOrEqual(row.watch_p50_ms);

    const parsed = spawnSync(
      'python3',
      ['-c', 'import sys, xml.etree.ElementTree as ET; r = ET.parse(sys.argv[1]).getroot(); print(r.tag); [print(p.get("data-measure"), len(p.get("points").split())) for p in r.iter("{http://www.w3.org/2000/svg}polyline")]', svg],
      { encoding: 'utf8' },
    );
    expect(parsed.status, parsed.stderr).toBe(0);
    const [root, ...lines] = parsed.stdout.trim().split('\n');
    expect(root).toBe('{http://www.w3.org/2000/svg}svg');
    // one polyline per measure, each with the one size's point
    expect(lines).toEqual(['noop_ms 1', 'one_edit_ms 1', 'watch_p95_ms 1', 'status_ms 1']);

    // a kept dataset is reused as generated (the edited captions restored)
    const again = spawnSync(process.execPath, ['bench/scale.js', '--sizes', '200', '--runs', '1', '--saves', '2', '--dir', join(tmp.dir, 'data'), '--json', json], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 300_000 });
    expect(again.status, again.stderr.slice(-2000)).toBe(0);
    const second = JSON.parse(readFileSync(json, 'utf8')).sizes[0];
    expect(second.generated).toBe(false);
    expect(second.error).toBeNull();
    expect(readFileSync(join(tmp.dir, 'data', 'n200', 'data', 'text', '100.txt'), 'utf8')).toBe('one-line-art, shape 100, side view\n');
  });
});
