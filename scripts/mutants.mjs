#!/usr/bin/env node
// Mutation check of the training math and of stopping/resuming: copies the working tree to a scratch
// folder, checks that each test below passes there unmutated, then applies one mutation at a time and
// runs the test that should catch it. A mutant the test does not catch ("SURVIVED"), a mutation whose
// text is no longer in the code, or a baseline that fails makes the script exit 1.
//
//   node scripts/mutants.mjs            all mutants (the two CLI ones take a few minutes each)
//   node scripts/mutants.mjs --quick    without the CLI ones
//   node scripts/mutants.mjs --only noising,lora-scale
//   node scripts/mutants.mjs --list
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..');
const PYTHON = process.env.LORABUILD_TEST_PYTHON ?? '/usr/bin/python3';
const W = 'src/worker/lorabuild_worker';
const MATH = 'tests.worker_py.test_training_math.MathTest';

const py = (test) => ({ kind: 'python', test });
const vitest = (file, name) => ({ kind: 'vitest', test: file, name });
const cli = (file) => ({ kind: 'cli', test: file });

/** name, file, the exact text replaced (must occur once), its replacement, the test that must fail */
const MUTANTS = [
  // the six of the audit (issue 15)
  ['lora-scale', `${W}/lora.py`, 'self.up(self.down(x)) * (self.alpha / self.rank * self.strength)', 'self.up(self.down(x)) * (self.rank / self.alpha * self.strength)', py(`${MATH}.test_lora_delta_is_alpha_over_rank_times_up_down`)],
  ['noising', `${W}/train.py`, 'noisy = a.sqrt() * latents + (1 - a).sqrt() * noise', 'noisy = a * latents + (1 - a) * noise', py(`${MATH}.test_the_training_step_noises_with_sqrt_alphas_cumprod`)],
  ['vae-scale', `${W}/checkpoint.py`, 'return mean * self.config.vae.scale_factor, logvar', 'return mean, logvar', py(`${MATH}.test_cached_latents_are_the_posterior_mean_times_0_18215`)],
  ['min-snr', `${W}/train.py`, 'per_item * torch.clamp(snr, max=p.min_snr_gamma) / snr', 'per_item * torch.clamp(snr, max=p.min_snr_gamma)', py(`${MATH}.test_min_snr_weights_are_min_snr_gamma_over_snr_for_epsilon_prediction`)],
  ['warmup-ignored', `${W}/train.py`, '    if taken < warmup:\n', '    if False:\n', py(`${MATH}.test_learning_rate_at_chosen_steps`)],
  ['header-bound-ts', 'src/safetensors/format.ts', 'if (8 + n > fileSize) {', 'if (n > fileSize) {', vitest('tests/safetensors.test.ts', 'header length that fits the file but not after the 8-byte prefix')],
  ['header-bound-py', `${W}/safetensors_io.py`, 'if 8 + header_len > size:', 'if header_len > size:', py('tests.worker_py.test_safetensors_io.BadHeaders.test_header_length_that_fits_the_file_but_not_after_the_8_byte_prefix')],
  // the recipe this issue added, and the schedule
  ['schedule-linear-betas', `${W}/checkpoint.py`, 'torch.linspace(BETA_START**0.5, BETA_END**0.5, TRAIN_TIMESTEPS, dtype=torch.float64) ** 2', 'torch.linspace(BETA_START, BETA_END, TRAIN_TIMESTEPS, dtype=torch.float64)', py(`${MATH}.test_scaled_linear_alphas_cumprod_at_known_timesteps`)],
  ['cosine-shifted', `${W}/train.py`, 'base, taken, warmup = params.learning_rate, step - 1, params.warmup_steps', 'base, taken, warmup = params.learning_rate, step, params.warmup_steps', py(`${MATH}.test_learning_rate_at_chosen_steps`)],
  ['schedule-not-applied', `${W}/train.py`, '            group["lr"] = lr\n', '            group["lr"] = p.learning_rate\n', py(`${MATH}.test_the_optimizer_gets_the_scheduled_rate`)],
  ['no-clipping', `${W}/train.py`, 'torch.nn.utils.clip_grad_norm_(list(self.net.parameters()), p.max_grad_norm)', 'None', py(`${MATH}.test_clipping_scales_the_global_gradient_norm`)],
  ['per-tensor-clipping', `${W}/train.py`, 'torch.nn.utils.clip_grad_norm_(list(self.net.parameters()), p.max_grad_norm)', '[torch.nn.utils.clip_grad_norm_([q], p.max_grad_norm) for q in self.net.parameters()]', py(`${MATH}.test_clipping_scales_the_global_gradient_norm`)],
  ['accumulation-mean', `${W}/train.py`, 'scaled = loss / p.gradient_accumulation', 'scaled = loss / len(self.sampler.micro_batch_items(step))', py(`${MATH}.test_a_partial_step_divides_its_loss_by_the_full_accumulation`)],
  ['accumulation-across-epochs', `${W}/train.py`, 'last = min(first + p.gradient_accumulation, self.micro_per_epoch)', 'last = first + p.gradient_accumulation', py(`${MATH}.test_accumulation_follows_simplelora_epochs`)],
  ['posterior-std', `${W}/train.py`, 'torch.exp(0.5 * logvar)', 'torch.exp(logvar)', py(`${MATH}.test_latents_sample_draws_mean_plus_scaled_std_noise_deterministically`)],
  ['posterior-unused', `${W}/train.py`, 'if p.latents == "sample":', 'if False:', py(`${MATH}.test_latents_sample_draws_mean_plus_scaled_std_noise_deterministically`)],
  ['gaussian-init', `${W}/lora.py`, 'torch.randn(weight.shape, generator=gen) / adapter.rank', 'torch.randn(weight.shape, generator=gen) / adapter.rank**0.5', py(`${MATH}.test_lora_init_kaiming_and_gaussian`)],
  // stopping: the worker must stop at a step boundary on Ctrl-C / SIGHUP, lorabuild on SIGHUP, and
  // an interrupted cosine run must be found again
  ['worker-ignores-sigint', `${W}/__main__.py`, 'for name in ("SIGTERM", "SIGINT", "SIGHUP")', 'for name in ("SIGTERM",)', py('tests.worker_py.test_server.ServerTest.test_stop_signals_cancel_the_running_op_at_a_step_boundary_and_exit')],
  ['cli-ignores-sighup', 'src/cli/signals.ts', "['SIGINT', 'SIGTERM', 'SIGHUP']", "['SIGINT', 'SIGTERM']", cli('tests/train-interrupt.test.ts')],
  ['cosine-not-resumable', 'src/stages/train.ts', "const params = rest.lr_scheduler === 'constant' ? rest : { ...rest, steps };", "const params = rest.lr_scheduler === 'constant' ? rest : { ...rest, steps, interrupted_at: Math.random() };", cli('tests/train-interrupt.test.ts')],
  // issue 20: the chunk trees and the digest of long file maps
  ['tree-positional-cuts', 'src/cache/chunk-tree.ts', 'if (recordHash(text) % every === 0 ||', 'if (texts.length % 32 === 0 ||', vitest('tests/chunk-tree.test.ts', 'a one-record edit, insert or delete writes a handful of nodes')],
  ['tree-count-unchecked', 'src/cache/chunk-tree.ts', 'if (out.length - before !== expectCount) throw', 'if (false) throw', vitest('tests/chunk-tree.test.ts', 'a missing, garbled or lying node')],
  // the listing snapshot (issue 20): what its key covers, when it is taken, the map it serves
  ['snapshot-key-no-numbers', 'src/datasets/local/listing-snapshot.ts', 'hash.update(text).update(new Uint8Array(numbers.buffer, numbers.byteOffset + start * 24, (end - start) * 24));', 'hash.update(text);', vitest('tests/listing-snapshot.test.ts', 'a caption edited to the same size')],
  ['snapshot-key-no-folder', 'src/datasets/local/listing-snapshot.ts', '`${MAGIC}\\n${display}\\n${layout}\\n${rels.length}\\n`', '`${MAGIC}\\n${layout}\\n${rels.length}\\n`', vitest('tests/listing-snapshot.test.ts', 'keys the snapshot on the folder')],
  ['snapshot-racy-taken', 'src/datasets/local/listing-snapshot.ts', '    if (racy(numbers[i], at)) return false;\n', '', vitest('tests/listing-snapshot.test.ts', 'takes no snapshot of a folder with a file modified just now')],
  ['snapshot-map-unchecked', 'src/datasets/local/list.ts', 'if (filesDigest(made.files) !== snap.digest) throw new Error(', 'if (false) throw new Error(', vitest('tests/listing-snapshot.test.ts', 'refuses a map that no longer has')],
  ['parallel-lstat-one-end', 'src/datasets/local/stat-share.ts', 'return side === FRONT ? taken : chunks - 1 - taken;', 'return taken;', cli('tests/parallel-lstat.test.ts')],
  ['parallel-lstat-gone-kept', 'src/datasets/local/walk.ts', 'if (kind === GONE && fromMemo) return undefined;', 'if (kind === GONE && fromMemo) continue;', cli('tests/parallel-lstat.test.ts')],
  ['stat-hint-racy-from-walk', 'src/datasets/local/list.ts', 'walkStartedAt = Math.min(walkStartedAt, walk.statsFrom ?? Infinity);', 'void walk.statsFrom;', cli('tests/stat-hint.test.ts')],
  ['stat-hint-names-unchecked', 'src/datasets/local/parallel-lstat.ts', 'if (pre.names === joined) {', 'if (pre.names.length > 0) {', cli('tests/stat-hint.test.ts')],
  ['walk-table-unsorted', 'src/datasets/local/walk.ts', 'ascending(rels) ? found : sortedTable(found.rels, found.numbers)', 'found', vitest('tests/walk-table.test.ts')],
  ['limiter-no-handoff', 'src/engine/limiter.ts', '      if (next) next();\n      else this.running--;', '      this.running--;\n      next?.();', vitest('tests/limiter.test.ts', 'runs at most')],
  // the watch's warm-up: its stages run though fresh, record nothing, and leave the others decided
  ['warm-records', 'src/engine/executor.ts', "      if (rerun) return { report: report('ran', summarize(reasons), { fingerprint: fp, items: record.itemCounts }), outputs: out };\n", '', vitest('tests/engine.test.ts', 'reruns the named stages though they are fresh')],
  ['warm-runs-nothing', 'src/engine/executor.ts', "    if (rerun) {\n      reasons = ['filling the memos'];", "    if (false) {\n      reasons = ['filling the memos'];", vitest('tests/engine.test.ts', 'warm-up')],
  ['warm-runs-all', 'src/engine/executor.ts', "const decideOnly = mode === 'status' || (mode === 'warm' && !rerun);", "const decideOnly = mode === 'status';", vitest('tests/engine.test.ts', 'only decides the stages it is not given')],
  ['warm-no-vocab', 'src/stages/validate.ts', "      if (tokenizer.encodeIds) tokenizer.encodeIds('a');", '      if (tokenizer.encodeIds) void tokenizer.id;', cli('tests/watch-warm.test.ts')],
  ['vocab-in-one-off-run', 'src/engine/stage-context.ts', 'rebuilds: items.remembers,', 'rebuilds: true,', cli('tests/watch-warm.test.ts')],
  ['kept-report-lazy-in-watch', 'src/text/validation-delta.ts', 'if (delta === null && !again) {', 'if (delta === null) {', vitest('tests/validation-delta.test.ts', 'makes its state on the first report')],
  ['parsed-json-16m', 'src/cache/parsed-json.ts', 'const MAX_CHARS = 128 * 1024 * 1024;', 'const MAX_CHARS = 16 * 1024 * 1024;', vitest('tests/parsed-json.test.ts', '100,000-item list')],
  ['hash-reuse-racy', 'src/datasets/local/list.ts', ' && !racy(files[i].mtimeMs, before.hashedAt)', '', vitest('tests/list-incremental.test.ts', 'unless it was racy')],
  ['hash-reuse-no-memo', 'src/datasets/local/list.ts', ' && source.knownHash !== undefined && last.walked', ' && last.walked', vitest('tests/list-incremental.test.ts', 'gives the listing and file map')],
  ['lookup-twice-two-places', 'src/engine/stage-context.ts', 'if (calls && missed !== undefined && missed.key === key) {', 'if (false) {', vitest('tests/cache-memory.test.ts', 'counts as one lookup')],
  ['pack-in-order-by-key-only', 'src/cache/sorted-memo.ts', 'x.value[1] === y.value[1] && x.value[0] === y.value[0]', 'x.value[0] === y.value[0]', vitest('tests/sorted-memo.test.ts', 'full sort')],
  ['pack-remove-nothing', 'src/cache/sorted-memo.ts', '  for (const k of keys) out.splice(lowerBound(out, k, key), 1);', '  void keys;', vitest('tests/sorted-memo.test.ts', 'full sort')],
  ['full-gc-noop', 'src/watch/full-gc.ts', '  gc();\n  return true;', '  return true;', cli('tests/full-gc.test.ts')],
  ['keep-pack-noop', 'src/cache/item-memo.ts', '  keepPack(packRoot: string): void {\n    if (!this.remembered) return;', '  keepPack(packRoot: string): void {\n    if (this.remembered) return;', vitest('tests/item-memo-watch.test.ts', 'keepPack')],
  ['restore-forgets-pack', 'src/engine/executor.ts', '      keepItemPack(items, entry);', '      void keepItemPack;', vitest('tests/watch-undo.test.ts')],
  ['same-file-twice-is-burst', 'src/watch/state.ts', '        if (this.leadingFor !== change.path) this.armTimer();', '        this.armTimer();', vitest('tests/watch-units.test.ts', 'lone change')],
  ['listed-presence-unused', 'src/cache/cas.ts', '    if (size === undefined && this.listed?.has(sha256)) return true;', '    void this.listed;', vitest('tests/cache-memory.test.ts', 'listPresence')],
  ['listed-presence-always', 'src/cache/cas.ts', '    if (sample.length * 256 > expectedChecks * 20) return;', '    void sample;', vitest('tests/cache-memory.test.ts', 'listPresence')],
  ['preload-never-lists', 'src/cache/item-memo.ts', 'if (!this.remembered && records.length >= LIST_PRESENCE_MIN) this.cas.listPresence(2 * records.length);', 'void LIST_PRESENCE_MIN;', vitest('tests/cache-memory.test.ts', 'big preloaded pack')],
  ['unfiled-lost-on-failure', 'src/engine/executor.ts', '        // no pack is recorded for a failed run: what it computed goes to the item journal\n        items.settleUnfiled(record.items, false);', '', cli('tests/validate-records.test.ts')],
  ['unfiled-dropped-inline', 'src/engine/executor.ts', 'items.settleUnfiled(record.items, lists.itemPack !== undefined && !rerun);', 'items.settleUnfiled(record.items, !rerun);', cli('tests/validate-records.test.ts')],
  ['pack-only-ignored', 'src/engine/stage-context.ts', '{ journal: quiet || options?.packOnly !== true }', '{ journal: true }', cli('tests/scale-trees-cli.test.ts')],
  ['unfiled-written-when-packed', 'src/cache/item-memo.ts', '      if (!packed) this.journal.append(', '      if (packed || !packed) this.journal.append(', vitest('tests/item-memo-watch.test.ts', 'settles it')],
  ['files-digest-paths-only', 'src/engine/file-tree.ts', 'text += `${paths[i]}\\0${shas[i]}\\n`;', 'text += `${paths[i]}\\n`;', cli('tests/scale-trees-cli.test.ts')],
  // the item journals (issue 20): a damaged line is never used, the last line wins, a torn tail never swallows the next line
  ['journal-crc-unchecked', 'src/cache/item-journal.ts', 'return crc32(`${keyHash} ${json}`) === crc ? json : undefined;', 'return json;', vitest('tests/item-journal.test.ts', 'byte changed')],
  ['journal-first-line-wins', 'src/cache/item-journal.ts', 'if (KEY_RE.test(key)) lines.set(key, text.slice(start, end));', 'if (KEY_RE.test(key) && !lines.has(key)) lines.set(key, text.slice(start, end));', vitest('tests/item-journal.test.ts', 'last line of a key wins')],
  ['journal-no-fresh-line', 'src/cache/item-journal.ts', 'Buffer.from(this.opened.has(path) ? line : `\\n${line}`)', 'Buffer.from(line)', vitest('tests/item-journal.test.ts', 'byte changed')],
  ['journal-read-back-off', 'src/cache/item-journal.ts', 'at: size + text.length - bytes - 1', 'at: size + text.length - bytes', vitest('tests/item-journal.test.ts', 'last line of a key wins')],
  ['gc-keeps-every-record', 'src/cache/gc.ts', 'compactJournals(root, (id) => neededItems.has(id))', 'compactJournals(root, () => true)', vitest('tests/cache.test.ts', 'no kept build names')],
  // a caption's bytes: stored only when they are not the UTF-8 of its text
  ['caption-blob-never-stored', 'src/stages/prepare.ts', "hubRow || Buffer.from(text, 'utf8').equals(bytes) ?", 'true ?', vitest('tests/validate.test.ts', 'one problem per item')],
  ['caption-bytes-always-text', 'src/stages/validate.ts', "  if (sha256Hex(utf8) === caption.sha256) return utf8;\n", '  return utf8;\n', vitest('tests/validate.test.ts', 'one problem per item')],
  ['canonical-unsorted', 'src/engine/canonical.ts', '      keys.sort();\n', '', vitest('tests/cache.test.ts', 'code-unit order')],
  ['canonical-keeps-undefined', 'src/engine/canonical.ts', '    if (v === undefined) continue;\n', '', vitest('tests/cache.test.ts', 'code-unit order')],
  ['json-lines-lost-at-exit', 'src/engine/progress.ts', "      process.once('exit', this.flushOnExit);\n", '', cli('tests/engine-units.test.ts')],
  // a watch's memory of what did not change (issue 20): parsed chunk-tree leaves shared with the records written, the file map a kept lock entry records
  ['leaf-cache-never-read', 'src/cache/chunk-tree.ts', 'share && (expectLevel === undefined || expectLevel === 0) ? cachedLeaf(sha) : undefined', 'undefined', vitest('tests/watch-memory-leaves.test.ts', 'without reading a leaf')],
  ['leaf-writer-shares-none', 'src/cache/chunk-tree.ts', 'if (shareable(slice)) cacheLeaf(sha, slice);', '', vitest('tests/watch-memory-leaves.test.ts', 'without reading a leaf')],
  ['leaf-shares-unfrozen', 'src/cache/chunk-tree.ts', "records.every((r) => r === null || typeof r !== 'object' || Object.isFrozen(r))", 'true', vitest('tests/watch-memory-leaves.test.ts', 'could not share')],
  ['leaf-cache-for-every-tree', 'src/cache/chunk-tree.ts', 'return read(cas, ref, nodes, false);', 'return read(cas, ref, nodes, true);', vitest('tests/watch-memory-leaves.test.ts', 'could not share')],
  ['keep-at-hand-builds-unasked', 'src/engine/file-tree.ts', '(unbuilt.has(files) && !build)', 'false', vitest('tests/watch-memory-leaves.test.ts', 'only when asked to')],
  ['warm-up-keeps-no-map', 'src/engine/executor.ts', 'if (previous?.filesTree) keepAtHand(previous.filesTree, inputs.files, true);', '', cli('tests/watch-undo-failed.test.ts')],
  ['pack-preload-unshared', 'src/engine/executor.ts', 'items.remembers ? readSharedTree(cas, pack) : readTree(cas, pack)', 'readTree(cas, pack)', cli('tests/watch-pack-shared.test.ts')],
  ['write-json-unfrozen', 'src/engine/stage-context.ts', '      deepFreeze(value);\n', '', cli('tests/watch-undo-failed.test.ts')],
  ['watch-short-of-watches-waits', 'src/watch/session.ts', '        this.auditOften = true;\n', '', cli('tests/watch-cli.test.ts')],
  ['stdout-closed-crashes-watch', 'src/cli/watch.ts', '      if (!stopping) onSignal();\n', '      throw new Error("EPIPE");\n', cli('tests/watch-cli.test.ts')],
  // the walk's lstat without Stats objects (src/datasets/local/file-numbers.ts)
  ['fast-lstat-mtime-unit', 'src/datasets/local/file-numbers.ts', 'a[MTIME_SEC] * 1e3 + a[MTIME_NSEC] / 1e6', 'a[MTIME_SEC] * 1e3 + a[MTIME_NSEC] / 1e3', vitest('tests/file-numbers.test.ts', 'to the bit')],
  ['fast-lstat-any-kind', 'src/datasets/local/file-numbers.ts', '(a[MODE] & S_IFMT) !== S_IFREG', '(a[MODE] & S_IFMT) === 0', vitest('tests/file-numbers.test.ts', 'writing nothing')],
  ['fast-lstat-ignores-opt-out', 'src/datasets/local/file-numbers.ts', "if (process.env.LORABUILD_PLAIN_LSTAT === '1' || pendingDeprecation()) return null;", '', cli('tests/file-numbers.test.ts')],
  ['fast-lstat-unchecked-size', 'src/datasets/local/file-numbers.ts', '  numbers[at] = a[SIZE];', '  numbers[at] = a[SIZE - 1];', vitest('tests/file-numbers.test.ts', 'to the bit')],
  ['fast-lstat-never-allowed', 'src/datasets/local/file-numbers.ts', '.test(lstatSync.toString());', '.test("");', vitest('tests/file-numbers.test.ts', 'to the bit')],
  ['fast-lstat-walk-kind', 'src/datasets/local/walk.ts', 'regularFileNumbers(prefix + names[i], numbers, i * 3)) {\n        kinds[i] = FILE;', 'regularFileNumbers(prefix + names[i], numbers, i * 3)) {', vitest('tests/parallel-lstat.test.ts', 'exactly as on one')],
  ['fast-lstat-helper-kind', 'src/datasets/local/stat-worker.ts', 'regularFileNumbers(job.prefix + names[i], numbers, i * 3)) {\n          kinds[i] = FILE;', 'regularFileNumbers(job.prefix + names[i], numbers, i * 3)) {', cli('tests/file-numbers.test.ts')],
  // listing entries copied key by key, not by spread (tests/frozen-shapes.test.ts)
  ['spread-listing-file', 'src/datasets/listing-paths.ts', 'withKeys(f, { abs: map(f.abs) })', '{ ...f, abs: map(f.abs) }', cli('tests/frozen-shapes.test.ts')],
  ['spread-listing-entry', 'src/datasets/listing-paths.ts', 'out = withKeys(e, {\n        ...(e.image ? { image: file(e.image) } : {}),\n        ...(e.captionFile ? { captionFile: file(e.captionFile) } : {}),\n      });', 'out = {\n        ...e,\n        ...(e.image ? { image: file(e.image) } : {}),\n        ...(e.captionFile ? { captionFile: file(e.captionFile) } : {}),\n      };', cli('tests/frozen-shapes.test.ts')],
  ['with-keys-extra-first', 'src/cache/parsed-json.ts', 'const out: Record<string, unknown> = {};', 'const out: Record<string, unknown> = { ...extra };', cli('tests/frozen-shapes.test.ts')],
];

const { values } = parseArgs({ options: { only: { type: 'string' }, quick: { type: 'boolean' }, list: { type: 'boolean' }, keep: { type: 'boolean' } } });
if (values.list) {
  for (const [name, file, , , t] of MUTANTS) console.log(`${name.padEnd(28)} ${file.padEnd(42)} ${t.test}${t.name ? ` -t "${t.name}"` : ''}`);
  process.exit(0);
}
const only = values.only ? new Set(values.only.split(',')) : null;
const chosen = MUTANTS.filter(([name, , , , t]) => (!only || only.has(name)) && !(values.quick && t.kind === 'cli'));
if (only) for (const name of only) if (!MUTANTS.some(([n]) => n === name)) throw new Error(`no mutant named ${name}; see --list`);

// a scratch copy of the working tree (tracked and untracked, not ignored files), sharing node_modules
const scratch = mkdtempSync(join(tmpdir(), 'lorabuild-mutants-'));
const files = spawnSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: ROOT, encoding: 'utf8' }).stdout.split('\0').filter(Boolean);
for (const file of files) {
  mkdirSync(dirname(join(scratch, file)), { recursive: true });
  cpSync(join(ROOT, file), join(scratch, file));
}
symlinkSync(join(ROOT, 'node_modules'), join(scratch, 'node_modules'));
console.log(`scratch copy: ${scratch} (${files.length} files)`);

// what `npm run build` does: tsc, then the bundle that bin/lorabuild.js runs (CLI tests use it)
function build() {
  const r = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { cwd: scratch, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsc failed in the scratch copy:\n${r.stdout}${r.stderr}`);
  const b = spawnSync(process.execPath, ['scripts/bundle.mjs'], { cwd: scratch, encoding: 'utf8' });
  if (b.status !== 0) throw new Error(`scripts/bundle.mjs failed in the scratch copy:\n${b.stdout}${b.stderr}`);
}

function runTest(t) {
  const env = { ...process.env, PYTHONPATH: join(scratch, 'src', 'worker'), LORABUILD_THREADS: '1', OMP_NUM_THREADS: '1' };
  const started = Date.now();
  const r = t.kind === 'python'
    ? spawnSync(PYTHON, ['-m', 'unittest', t.test], { cwd: scratch, env, encoding: 'utf8', timeout: 900_000 })
    : spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', t.test, ...(t.name ? ['-t', t.name] : [])], { cwd: scratch, env, encoding: 'utf8', timeout: 1_800_000 });
  return { passed: r.status === 0, seconds: (Date.now() - started) / 1000, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

const key = (t) => `${t.kind} ${t.test} ${t.name ?? ''}`;
let failed = false;
if (chosen.some(([, , , , t]) => t.kind === 'cli')) build();
const baselines = new Map();
for (const [, , , , t] of chosen) {
  if (baselines.has(key(t))) continue;
  const r = runTest(t);
  baselines.set(key(t), r.passed);
  console.log(`baseline ${r.passed ? 'passes' : 'FAILS '}  ${t.test}${t.name ? ` -t "${t.name}"` : ''} (${r.seconds.toFixed(1)} s)`);
  if (!r.passed) {
    failed = true;
    console.log(r.output.slice(-3000));
  }
}

const rows = [];
for (const [name, file, from, to, t] of chosen) {
  const path = join(scratch, file);
  const original = readFileSync(path, 'utf8');
  const count = original.split(from).length - 1;
  if (count !== 1) {
    rows.push([name, file, `text found ${count} times: update the mutant`, 0]);
    failed = true;
    continue;
  }
  writeFileSync(path, original.replace(from, to));
  try {
    if (t.kind === 'cli') build();
    const r = runTest(t);
    const verdict = !baselines.get(key(t)) ? 'baseline failed' : r.passed ? 'SURVIVED' : 'killed';
    if (verdict !== 'killed') failed = true;
    rows.push([name, file, verdict, r.seconds]);
    console.log(`${verdict.padEnd(9)} ${name} (${r.seconds.toFixed(1)} s)`);
  } finally {
    writeFileSync(path, original);
    if (t.kind === 'cli') build();
  }
}

console.log('\nmutant                       file                                       result      seconds');
for (const [name, file, verdict, seconds] of rows) console.log(`${name.padEnd(28)} ${file.padEnd(42)} ${String(verdict).padEnd(11)} ${seconds.toFixed(1)}`);
console.log(`\n${rows.filter((r) => r[2] === 'killed').length} of ${rows.length} mutants killed`);
if (!values.keep) rmSync(scratch, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
