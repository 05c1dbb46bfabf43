// npm run bench (part 3): `lorabuild watch` write-to-diagnostics latency (bench/watch-latency.js)
// on a 1,000-item lab-layout dataset, 100 caption edits; the first build is cold (every item).
// Goal: p95 <= 100 ms (10,000 items), <= 50 ms (1,000); also the watch's CPU per edit and RSS.
// Usage: node bench/watch.js [--images N | --items N] [--edits N] [--debounce MS] [--cpu-prof DIR] [--cpu-prof-edits DIR]
//   --cpu-prof-edits DIR: DIR/edits.cpuprofile, the main thread during the edits only (no cold build)
//   WATCH_NODE_ARGS='--max-old-space-size=200': extra node flags for the watch process
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeLabDataset } from './lab-dataset.js';
import { watchLatency } from './watch-latency.js';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const images = arg('items', arg('images', 1000));
const profIndex = process.argv.indexOf('--cpu-prof');
const profDir = profIndex > 0 ? resolve(process.argv[profIndex + 1]) : undefined;
const editsProfIndex = process.argv.indexOf('--cpu-prof-edits');
const editsProfDir = editsProfIndex > 0 ? resolve(process.argv[editsProfIndex + 1]) : undefined;
const nodeArgs = (process.env.WATCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
const edits = arg('edits', 100);
const debounce = arg('debounce', NaN);

const work = mkdtempSync(join(tmpdir(), 'lorabuild-bench-watch-'));
try {
  const project = join(work, 'p');
  console.error(`bench watch: generating ${images} images + captions`);
  writeLabDataset(join(project, 'data'), images);
  writeFileSync(join(project, 'lorafile.yaml'), 'version: 1\ndatasets:\n  bench:\n    folder: data\n    rules: { too_small: off }\n');
  execFileSync('find', [join(project, 'data'), '-type', 'f', '-exec', 'touch', '-d', '2024-01-01', '{}', '+']);
  const { first_build_ms, edited, ...rest } = await watchLatency({ project, images, edits, debounce, nodeArgs, profDir, editsProfDir });
  const row = { images: rest.images, edits: rest.edits, cold_build_ms: first_build_ms, ...rest };
  console.log(JSON.stringify({ bench: 'watch write-to-diagnostics', ...row, goal_p95_ms: 100 }));
  console.log(`| ${images} items | ${edits} edits | p50 ${row.p50_ms} ms | p95 ${row.p95_ms} ms | max ${row.max_ms} ms | build p50 ${row.build_p50_ms} ms | CPU/edit ${row.cpu_per_edit_ms} ms | RSS ${row.rss_after_first_build_mb} -> ${row.rss_after_edits_mb} MB |`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
