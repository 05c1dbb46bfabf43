#!/usr/bin/env node
// node bench/validate.js — caption validation speed (issue 3 goals):
//   tokenize + validate 10,000 captions: <= 300 ms (cold word cache, all per-item rules + the
//   dataset-wide report); re-validate after one caption edit: <= 20 ms (one item re-checked, the
//   dataset-wide rules and the report rebuilt from the other items' cached results).
// Loading the vocabulary is timed separately. The CLIP files come from LORABUILD_CLIP_TOKENIZER,
// else the vocabulary shipped in assets/clip. Options: --items N (default 10000), --json.
// Needs `npx tsc -p tsconfig.json` first (imports dist/).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import os from 'node:os';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => import(join(repoRoot, 'dist', p));
const { values } = parseArgs({ options: { items: { type: 'string' }, json: { type: 'boolean' } } });
const count = Number(values.items ?? 10000);

const { findTokenizerFiles } = await dist('text/load.js');
const { loadHfBpe, loadOpenAiBpe } = await dist('text/bpe-vocab.js');
const { ClipTokenizer } = await dist('text/clip-tokenizer.js');
const { checkItem } = await dist('text/check-item.js');
const { buildReport } = await dist('text/validation-report.js');
const { RulesSchema } = await dist('config/schema.js');

const where = process.env.LORABUILD_CLIP_TOKENIZER ?? join(repoRoot, 'assets', 'clip');
const files = findTokenizerFiles(where);
if (!files) throw new Error(`no CLIP tokenizer files in ${where}; set LORABUILD_CLIP_TOKENIZER`);
let t = performance.now();
const vocab = files.kind === 'openai' ? await loadOpenAiBpe(files.bpe) : await loadHfBpe(files.vocab, files.merges);
const loadMs = performance.now() - t;

// Deterministic lab-style captions: a trigger, tags, some long ones, some accents and emoji.
let seed = 12345;
function rand(n) {
  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
  return ((x ^ (x >>> 14)) >>> 0) % n;
}
const WORDS = ('face hand cup tree bird chair woman man cat dog flower house river mountain side view front three quarter holding ' +
  'sitting standing smiling minimal line drawing black ink white paper café naïve 🐱 portrait profile abstract continuous stroke ' +
  'bicycle lamp window garden teapot guitar violin clock umbrella sailboat lighthouse bridge castle forest desert ocean moon star ' +
  'sun cloud rain snow leaf branch root seed fruit apple pear lemon orange grape cherry bread cheese wine glass bottle bowl spoon').split(' ');
function caption(i) {
  const tags = ['one-line-art'];
  const n = 2 + rand(i % 50 === 0 ? 40 : 6);
  // tags come from a vocabulary (single words and word pairs), as in tag-style datasets
  for (let k = 0; k < n; k++) tags.push(rand(3) === 0 ? `${WORDS[rand(20)]} ${WORDS[rand(WORDS.length)]}` : WORDS[rand(WORDS.length)]);
  return tags.join(', ');
}
const items = Array.from({ length: count }, (_, i) => {
  const text = caption(i);
  return {
    id: String(i),
    image: { sha256: i.toString(16).padStart(64, '0'), width: 768, height: 640, format: 'png', origin: `ds/image/${i}.png` },
    caption: { text, clean: text.trim(), sha256: (i + 1e6).toString(16).padStart(64, 'c'), origin: `ds/text/${i}.txt`, line: 1 },
  };
});
const manifest = { dataset: 'bench', source: 'folder', layout: 'lab', items, stray: [], skipped: [] };
const settings = { rules: RulesSchema.parse({}), trigger: 'one-line-art', minSize: 512, layout: 'lab' };
const identity = { id: vocab.id, reason: 'bench' };

function validateAll(tokenizer) {
  const checks = items.map((item) => checkItem(item, null, tokenizer, settings));
  return { checks, report: buildReport(manifest, checks, settings, identity) };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// CPU time (user + system) next to wall time: on a shared machine the wall clock mostly measures
// how long the process waited for a core
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const coldCpu = [];
const warmCpu = [];
const editCpu = [];
const cold = [];
let result;
for (let rep = 0; rep < 5; rep++) {
  const tokenizer = new ClipTokenizer(vocab); // empty word cache
  t = performance.now();
  const c = cpuMs();
  result = validateAll(tokenizer);
  coldCpu.push(cpuMs() - c);
  cold.push(performance.now() - t);
}
const tokenizer = new ClipTokenizer(vocab);
validateAll(tokenizer);
const warm = [];
for (let rep = 0; rep < 5; rep++) {
  t = performance.now();
  const c = cpuMs();
  validateAll(tokenizer);
  warmCpu.push(cpuMs() - c);
  warm.push(performance.now() - t);
}

// one caption edited: re-check that item, rebuild the dataset-wide report
const edits = [];
const checks = result.checks;
for (let rep = 0; rep < 20; rep++) {
  const i = (rep * 997) % count;
  const edited = { ...items[i], caption: { ...items[i].caption, text: `${items[i].caption.text}, edit ${rep}` } };
  edited.caption.clean = edited.caption.text;
  t = performance.now();
  const c = cpuMs();
  items[i] = edited;
  checks[i] = checkItem(edited, null, tokenizer, settings);
  buildReport(manifest, checks, settings, identity);
  editCpu.push(cpuMs() - c);
  edits.push(performance.now() - t);
}

const byCode = {};
for (const d of result.report.diagnostics) byCode[d.code] = (byCode[d.code] ?? 0) + 1;
const out = {
  diagnostics_by_code: byCode,
  items: count,
  tokens: result.report.tokens,
  diagnostics: result.report.diagnostics.length,
  vocab_load_ms: +loadMs.toFixed(1),
  validate_cold_ms: +median(cold).toFixed(1),
  validate_cold_cpu_ms: +median(coldCpu).toFixed(1),
  validate_warm_ms: +median(warm).toFixed(1),
  validate_warm_cpu_ms: +median(warmCpu).toFixed(1),
  revalidate_one_edit_ms: +median(edits).toFixed(2),
  revalidate_one_edit_cpu_ms: +median(editCpu).toFixed(2),
  load_average: os.loadavg()[0],
  goals: { validate_ms: 300, revalidate_ms: 20 },
};
if (values.json) console.log(JSON.stringify(out));
else {
  console.log(`${count} captions (mean ${out.tokens.mean} tokens, max ${out.tokens.max}, ${out.tokens.over} over the limit), ${out.diagnostics} diagnostics`);
  console.log(`(wall / CPU time; load average ${out.load_average.toFixed(1)} on ${os.availableParallelism()} cores)`);
  console.log(`vocabulary load:                 ${out.vocab_load_ms} ms`);
  console.log(`tokenize + validate, cold cache: ${out.validate_cold_ms} / ${out.validate_cold_cpu_ms} ms (median of 5; goal <= 300)`);
  console.log(`tokenize + validate, warm cache: ${out.validate_warm_ms} / ${out.validate_warm_cpu_ms} ms`);
  console.log(`re-validate after one edit:      ${out.revalidate_one_edit_ms} / ${out.revalidate_one_edit_cpu_ms} ms (median of 20; goal <= 20)`);
}
