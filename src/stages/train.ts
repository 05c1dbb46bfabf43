// train:LORA — base model + prepared dataset -> a kohya-format LoRA per checkpoint and at the end,
// the loss curve and the training log.
//
// Fingerprint: model hash, the items used (image hashes, clean captions), every training parameter,
// the tokenizer identity, worker + torch versions and the device class. Latents and text contexts
// are cached per item (worker/encode-cache.ts). Runs that differ only in `steps` share a resume
// index (worker/train-resume.ts): a longer run continues from the longest earlier one, and an
// interrupted run (Ctrl-C, SIGTERM, SIGHUP, a watch cancel) from the step it stopped at. The
// resumable states stay in the cache: out/ gets the LoRAs, the loss curve and the log.
import { readFile, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Json, StageContext, StageImpl, StageInputs, StageResult, OutputFile } from '../engine/types.js';
import type { LoraSpec } from '../config/schema.js';
import type { Manifest, ManifestItem } from '../datasets/manifest.js';
import { canonicalHash, sha256Hex } from '../engine/canonical.js';
import { resolveTokenizer } from '../text/resolve.js';
import { modelFacts, resolveModel, workerScratch, type ModelFacts, type ResolvedModel } from './model.js';
import { cachedContext, cachedLatents, type EncodeScope } from '../worker/encode-cache.js';
import { WorkerError, type HelloResult } from '../worker/client.js';
import { workerHello } from '../worker/start.js';
import { portablePath, resolveUserPath } from '../config/paths.js';
import { ResumeIndex, type TrainRecord } from '../worker/train-resume.js';
import { loraMetadata, stampLoraFile } from '../safetensors/lora-metadata.js';
import { readSafetensorsHeader } from '../safetensors/io.js';
import { publishLora } from '../safetensors/publish.js';
import type { Diagnostic } from '../config/diagnostic.js';
import { ignoredSetting, settingsAdvice, StepClock, type TrainSetup } from './train-advice.js';

export interface TrainItem {
  id: string;
  /** CAS hash of the image the model sees (the prepared PNG when the dataset has `resolution`) */
  image: string;
  caption: string;
  imageOrigin: string;
  captionOrigin: string;
}

/** Items that have both an image that decoded and a caption. */
export function trainingItems(manifest: Manifest): TrainItem[] {
  return manifest.items
    .filter((it): it is ManifestItem & { image: NonNullable<ManifestItem['image']>; caption: NonNullable<ManifestItem['caption']> } => it.image !== null && it.caption !== null && !it.error)
    .map((it) => ({
      id: it.id,
      image: it.prepared?.sha256 ?? it.image.sha256,
      caption: it.caption.clean,
      imageOrigin: it.image.origin,
      captionOrigin: it.caption.line > 1 ? `${it.caption.origin}:${it.caption.line}` : it.caption.origin,
    }));
}

function loraSpec(ctx: StageContext): LoraSpec {
  const spec = ctx.config.loras[ctx.node.target];
  if (!spec) throw new Error(`train: lora '${ctx.node.target}' is not in the lorafile`);
  if (spec.init_from) {
    // refuse rather than silently train from scratch: the worker has no initial-weights argument yet
    throw new Error(`train:${ctx.node.target}: init_from (start from '${spec.init_from}') is not supported by this build; remove it to train from scratch`);
  }
  return spec;
}

async function readManifest(ctx: StageContext, dataset: string): Promise<Manifest> {
  const id = ctx.node.deps.find((d) => d === `prepare:${dataset}`) ?? ctx.node.deps.find((d) => d.startsWith('prepare:'));
  if (!id) throw new Error(`train:${ctx.node.target} has no prepare:${dataset} dependency`);
  return ctx.readJson(id, 'manifest.json') as unknown as Manifest;
}

/** The LoRA spec fields that shape training (what the worker receives as `params`). */
function trainingParams(spec: LoraSpec): Record<string, Json> {
  const { model: _model, dataset: _dataset, publish: _publish, init_from: _init, portable: _portable, ...rest } = spec;
  const params: Record<string, Json> = {};
  for (const [key, value] of Object.entries(rest)) if (value !== undefined) params[key] = value as Json;
  params.alpha = spec.alpha ?? spec.rank;
  return params;
}

function deviceClass(spec: LoraSpec, hello: HelloResult): string {
  return spec.device === 'cpu' ? 'cpu' : hello.device;
}

const pad = (step: number) => String(step).padStart(5, '0');

interface Prepared {
  spec: LoraSpec;
  model: ResolvedModel;
  facts: ModelFacts;
  hello: HelloResult;
  items: TrainItem[];
}

async function datasetItems(ctx: StageContext, spec: LoraSpec): Promise<TrainItem[]> {
  const items = trainingItems(await readManifest(ctx, spec.dataset));
  if (items.length === 0) throw new Error(`train:${ctx.node.target}: dataset '${spec.dataset}' has no item with both an image and a caption`);
  return items;
}

async function prepare(ctx: StageContext): Promise<Prepared> {
  const spec = loraSpec(ctx);
  const hello = await (await ctx.worker()).hello();
  const device = deviceClass(spec, hello);
  const facts = await modelFacts(ctx, spec.model, { workerVersion: hello.worker_version, device });
  const model = await resolveModel(ctx, spec.model, device);
  return { spec, model, facts, hello, items: await datasetItems(ctx, spec) };
}

// Cheap on purpose (status and no-op runs call it): the model is identified, not built or loaded.
async function inputs(ctx: StageContext): Promise<StageInputs> {
  const spec = loraSpec(ctx);
  const hello = await workerHello(ctx);
  const facts = await modelFacts(ctx, spec.model, { workerVersion: hello.worker_version, device: deviceClass(spec, hello) });
  const items = await datasetItems(ctx, spec);
  const tokenizer = await resolveTokenizer(ctx.config, spec.model, { model: facts });
  const files: Record<string, string> = {};
  for (const item of items) {
    const imageKey = files[item.imageOrigin] === undefined ? item.imageOrigin : `${item.imageOrigin}#${item.id}`;
    files[imageKey] = item.image;
    const captionKey = files[item.captionOrigin] === undefined ? item.captionOrigin : `${item.captionOrigin}#${item.id}`;
    files[captionKey] = sha256Hex(item.caption);
  }
  return {
    params: {
      ...trainingParams(spec),
      publish: spec.publish ?? null,
      model: spec.model,
      model_identity: facts.identity,
      // hub models: the pinned commit and files, so the next run (and CI) needs no request
      ...(facts.pin !== undefined ? { model_hub: facts.pin } : {}),
      tokenizer: tokenizer.id,
      worker_version: hello.worker_version,
      // a result is keyed by the machine class that made it unless the lorafile says it is portable
      ...(spec.portable ? { portable: true } : { torch: hello.torch, device: deviceClass(spec, hello) }),
    },
    files,
  };
}

/**
 * The key of the resume index: the training key without `steps` for a constant schedule, so that
 * runs differing only in length share resumable states. A cosine schedule depends on the total
 * length, so there only an interrupted run of the same length is a start.
 */
export function baseKey(inputs: StageInputs): string {
  const { steps, publish: _publish, ...rest } = inputs.params;
  const params = rest.lr_scheduler === 'constant' ? rest : { ...rest, steps };
  return canonicalHash({ params, files: inputs.files } as Json);
}

interface Encoded {
  items: { latents: string; context: string }[];
  /** the empty caption's context, for caption dropout */
  empty: string | null;
}

async function encodeAll(ctx: StageContext, prep: Prepared): Promise<Encoded> {
  const worker = await ctx.worker();
  const scope: EncodeScope = { ctx, worker, model: prep.model, workerVersion: prep.hello.worker_version };
  const tokenizer = await resolveTokenizer(ctx.config, prep.spec.model, { model: prep.facts });
  const out: { latents: string; context: string }[] = [];
  for (const [i, item] of prep.items.entries()) {
    ctx.progress(i, prep.items.length, `encoding ${item.id}`, 'item');
    const latents = await cachedLatents(scope, item.id, { sha256: item.image, path: ctx.blobPath(item.image) }, prep.spec.resolution);
    const context = await cachedContext(scope, item.id, tokenizer.encodePadded(item.caption).ids, prep.spec.clip_skip);
    out.push({ latents: ctx.blobPath(latents), context: ctx.blobPath(context) });
  }
  ctx.progress(prep.items.length, prep.items.length, 'encoded', 'item');
  const empty = prep.spec.caption_dropout > 0 ? ctx.blobPath(await cachedContext(scope, '(empty caption)', tokenizer.encodePadded('').ids, prep.spec.clip_skip)) : null;
  return { items: out, empty };
}

/** The step a resumable state was saved at (the worker's "lorabuild.state" JSON metadata). */
async function stateStep(path: string): Promise<number | null> {
  const { metadata } = await readSafetensorsHeader(path);
  try {
    const step = (JSON.parse(metadata['lorabuild.state'] ?? 'null') as { step?: unknown } | null)?.step;
    return typeof step === 'number' && Number.isInteger(step) && step > 0 ? step : null;
  } catch {
    return null;
  }
}

interface TrainRun {
  record: TrainRecord;
  log: string[];
}

/** A warning or note shown in the terminal (compiler style, at the lorafile line) and kept in the stage log. */
function tell(ctx: StageContext, d: Diagnostic, logLine: (line: string) => void = (l) => ctx.log(l)): void {
  ctx.emit({ diagnostics: [d as unknown as Json] });
  logLine(`${d.severity}: ${d.message}`);
}

async function train(ctx: StageContext, prep: Prepared, inputs: StageInputs, start: TrainRecord | undefined): Promise<TrainRun> {
  const { spec, model, items } = prep;
  const log: string[] = [];
  const logLine = (line: string) => {
    log.push(line);
    ctx.log(line);
  };
  const setup: TrainSetup = { config: ctx.config, lora: ctx.node.target, spec, arch: model.arch, device: deviceClass(spec, prep.hello) };
  const advice = settingsAdvice(setup);
  for (const d of advice) tell(ctx, d, logLine);
  const clock = new StepClock(setup);
  const worker = await ctx.worker();
  const encoded = await encodeAll(ctx, prep);
  const metadata = loraMetadata({
    loraName: ctx.node.target,
    datasetName: spec.dataset,
    spec,
    modelSha256: model.sha256,
    modelName: spec.model,
    arch: model.arch,
    captions: items.map((i) => i.caption),
    datasetHash: canonicalHash(items.map((i) => [i.image, i.caption]) as Json),
  });
  const checkpoints: Record<string, string> = { ...(start?.checkpoints ?? {}) };
  const curve: [number, number][] = [];
  const scratch = await workerScratch(ctx, 'train');
  let lastStep = start?.steps ?? 0;
  try {
    if (start) logLine(`resuming from step ${start.steps} (${start.complete ? 'an earlier complete run' : 'an interrupted run'})`);
    const pendingStamps: Promise<void>[] = [];
    let result: Json;
    try {
      result = await worker.request(
        'train',
        {
          model: model.path,
          arch: model.arch,
          ...(model.allowPickle ? { allow_pickle: true } : {}),
          items: encoded.items,
          ...(encoded.empty ? { empty_context: encoded.empty } : {}),
          params: trainingParams(spec),
          out_dir: scratch.dir,
          checkpoint_every: spec.checkpoint_every,
          steps: spec.steps,
          metadata,
          ...(start ? { resume: ctx.blobPath(start.state) } : {}),
        },
        {
          signal: ctx.signal,
          log: logLine,
          onEvent: (event) => {
            if (event.type === 'progress') {
              lastStep = event.step;
              if (event.loss !== undefined) curve.push([event.step, event.loss]);
              // the estimate's timing varies run to run: the stage log gets it, train-log.txt does not
              const estimate = clock.tick(event.step, event.total, Date.now());
              if (estimate) tell(ctx, estimate);
              // rate and ETA come with every progress line (engine/rate.ts); the worker's its would repeat them
              ctx.progress(event.step, event.total, [event.message, event.loss === undefined ? '' : `loss ${event.loss.toFixed(4)}`].filter(Boolean).join(' · ') || undefined, 'step');
            } else if (event.type === 'checkpoint') {
              // the output's name, not the scratch path: the log is committed with out/ and must not differ by machine
              logLine(`checkpoint at step ${event.step}: ${event.step < spec.steps ? `${ctx.node.target}-step${pad(event.step)}` : ctx.node.target}.safetensors`);
              pendingStamps.push(
                // a checkpoint is what a run of that many steps ends with: say so, so that a longer
                // run and an extended one give the same bytes for it
                stampLoraFile(event.path, { ss_steps: String(event.step), ss_max_train_steps: String(event.step) })
                  .then(() => ctx.putBlob({ file: event.path }))
                  .then((blob) => {
                    checkpoints[String(event.step)] = blob.sha256;
                  }),
              );
            }
          },
        },
      );
    } catch (err) {
      await Promise.allSettled(pendingStamps);
      await keepInterruptedState(ctx, err, scratch.dir, inputs, checkpoints, start, curve, logLine);
      throw err;
    }
    await Promise.all(pendingStamps);
    const done = result as { final: string; state: string; loss_curve?: [number, number][]; peak_memory?: number; warnings?: { setting: string; message: string }[] };
    const ignored = (done.warnings ?? []).map((w) => ignoredSetting(setup, w));
    for (const d of ignored) ctx.emit({ diagnostics: [d as unknown as Json] });
    await stampLoraFile(done.final, { ss_steps: String(spec.steps), ss_max_train_steps: String(spec.steps) });
    const final = await ctx.putBlob({ file: done.final });
    const state = await ctx.putBlob({ file: done.state });
    const fromWorker = done.loss_curve ?? curve;
    const first = fromWorker.length ? fromWorker[0][0] : Infinity;
    const lossCurve = [...(start?.lossCurve ?? []).filter(([s]) => s < first), ...fromWorker];
    logLine(`trained ${spec.steps} steps`);
    // a measurement of this machine: in the stage log (`status --log`), not in out/ or the lock
    if (done.peak_memory) ctx.log(`peak memory ${(done.peak_memory / 2 ** 20).toFixed(0)} MiB`);
    const warnings = [...advice, ...ignored].map((d) => d.message);
    return {
      record: { steps: spec.steps, complete: true, state: state.sha256, final: final.sha256, checkpoints, lossCurve, peakMemory: done.peak_memory, ...(warnings.length ? { warnings } : {}) },
      log,
    };
  } finally {
    await scratch.cleanup();
  }
}

/** On cancellation the worker leaves a resumable state in out_dir: index it so the next run resumes. */
async function keepInterruptedState(
  ctx: StageContext,
  err: unknown,
  outDir: string,
  inputs: StageInputs,
  checkpoints: Record<string, string>,
  start: TrainRecord | undefined,
  curve: [number, number][],
  logLine: (line: string) => void,
): Promise<void> {
  const key = baseKey(inputs);
  const statePath = join(outDir, 'state.safetensors');
  // cancelled (Ctrl-C, scancel) or a Slurm job that died or hit its time limit: the state it last saved is good
  const resumable = (err instanceof WorkerError && err.code === 'cancelled') || (err instanceof Error && err.name === 'SlurmJobError');
  if (!resumable || !existsSync(statePath)) return;
  const step = await stateStep(statePath);
  if (step === null || step <= (start?.steps ?? 0)) return;
  const state = await ctx.putBlob({ file: statePath });
  const kept = Object.fromEntries(Object.entries(checkpoints).filter(([s]) => Number(s) <= step));
  new ResumeIndex(ctx.cacheDir, key).add({ steps: step, complete: false, state: state.sha256, checkpoints: kept, lossCurve: [...(start?.lossCurve ?? []), ...curve] });
  tell(ctx, { severity: 'info', code: 'training_interrupted', message: `lora '${ctx.node.target}': stopped after step ${step} of ${inputs.params.steps}; the state is kept in the cache and the next run resumes from step ${step}` }, logLine);
}

function hasBlob(ctx: StageContext): (sha: string) => boolean {
  return (sha) => existsSync(ctx.blobPath(sha));
}

async function run(ctx: StageContext, inputs: StageInputs): Promise<StageResult> {
  const prep = await prepare(ctx);
  const name = ctx.node.target;
  const index = new ResumeIndex(ctx.cacheDir, baseKey(inputs));
  let record = index.exact(prep.spec.steps, hasBlob(ctx));
  let log: string[] = [];
  if (record) {
    log.push(`restored the ${record.steps}-step LoRA trained earlier with the same inputs`);
    ctx.log(log[0]);
    // not an output (out/ is committed): referenced, so that gc keeps it for a later, longer run
    await ctx.putBlob(await readFile(ctx.blobPath(record.state)));
  } else {
    const start = index.bestStart(prep.spec.steps, hasBlob(ctx));
    const trained = await train(ctx, prep, inputs, start);
    record = trained.record;
    log = trained.log;
    index.add(record);
  }

  const blobOf = async (sha: string): Promise<OutputFile> => ({ sha256: sha, size: (await stat(ctx.blobPath(sha))).size });
  ctx.addOutput(`${name}.safetensors`, await blobOf(record.final as string));
  const checkpointSteps = Object.keys(record.checkpoints).map(Number).filter((s) => s < prep.spec.steps).sort((a, b) => a - b);
  for (const step of checkpointSteps) ctx.addOutput(`${name}-step${pad(step)}.safetensors`, await blobOf(record.checkpoints[String(step)]));
  await writeFile(join(ctx.outDir, 'loss.json'), `${JSON.stringify({ lora: name, steps: record.steps, loss: record.lossCurve })}\n`);
  await writeFile(join(ctx.outDir, 'train-log.txt'), `${log.join('\n')}\n`);

  let published: string | null = null;
  if (prep.spec.publish) {
    const target = resolveUserPath(ctx.config, prep.spec.publish);
    await publishLora({ loraName: name, source: ctx.blobPath(record.final as string), target, shown: portablePath(ctx.config, target), log: (l) => ctx.log(l) });
    published = portablePath(ctx.config, target);
  }

  const losses = record.lossCurve.map(([, l]) => l);
  return {
    meta: {
      lora: name,
      steps: record.steps,
      checkpoints: checkpointSteps,
      items: prep.items.length,
      arch: prep.model.arch,
      device: deviceClass(prep.spec, prep.hello),
      first_loss: losses.length ? losses[0] : null,
      last_loss: losses.length ? losses[losses.length - 1] : null,
      published,
      warnings: record.warnings ?? [],
    },
  };
}

export const stage: StageImpl = {
  kind: 'train',
  version: 1,
  materializeTo: (node) => `loras/${node.target}`,
  inputs,
  run,
};
