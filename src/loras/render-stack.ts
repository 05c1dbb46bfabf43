// The LoRAs of one render, resolved for a run: each entry's file (per training checkpoint for the
// trained LoRA a checkpoint axis walks), analysed once per file against the model, refused when it
// does not fit (the preflight normally caught that already), and turned into what each grid column
// applies. A column of strength s applies every entry at s × its strength_model / strength_clip;
// entries at 0 / 0 drop out, so the strength-0 column is the model with no LoRA at all.
import type { Diagnostic } from '../config/diagnostic.js';
import { existsSync } from 'node:fs';
import { displayPath, resolveUserPath } from '../config/paths.js';
import { renderLoraEntries, type RenderLoraEntry } from '../config/render-loras.js';
import type { RenderSpec } from '../config/schema.js';
import type { Json, StageContext } from '../engine/types.js';
import type { Sd1Arch } from '../safetensors/sd15.js';
import { analyzeLoraFile, type LoraAnalysis } from './analyze.js';
import { fitDiagnostics, triggerWarning } from './diagnostics.js';
import { detectFamily, FAMILY_LABEL } from './family.js';
import { familyProblem, fitProblems, type FitProblem } from './fit.js';
import { hubModelFilePin, pinnedSafetensorsHeader } from '../datasets/hub/model-repo.js';
import { entryLabel, loraFilePath, resolveLoraSource, type LoraSource } from './source.js';
import { workerLoraFile } from './worker-plan.js';

/** Bump when what a cell's LoRAs mean for its pixels changes on this side (key spellings, roles). */
export const LORA_PLAN_VERSION = 1;

/** One LoRA as a cell applies it. */
export interface AppliedLora {
  label: string;
  sha256: string;
  strength_model: number;
  strength_clip: number;
}

interface Resolved {
  entry: RenderLoraEntry;
  source: LoraSource;
  analysis: LoraAnalysis;
}

function refuseFirstError(found: Diagnostic[]): void {
  const error = found.find((d) => d.severity === 'error');
  if (error) throw new Error(`${error.message}${error.hint ? `\n  hint: ${error.hint}` : ''}`);
}

/** A Hub LoRA of another family, told from its header (read by two Range requests) before its download. */
async function hubHeaderProblems(ctx: StageContext, entry: Extract<RenderLoraEntry, { kind: 'hub' }>, model: { name: string; arch: Sd1Arch }): Promise<FitProblem[]> {
  const pin = await hubModelFilePin(ctx, { repo: entry.hub, file: entry.file, revision: entry.revision });
  const problem = familyProblem(detectFamily(await pinnedSafetensorsHeader(ctx, pin, entry.file)), entryLabel(entry), model);
  return problem ? [problem] : [];
}

export class RenderLoras {
  private readonly bySha = new Map<string, Resolved>();

  private constructor(
    readonly entries: RenderLoraEntry[],
    /** entry index -> step (null = final) -> resolved file */
    private readonly resolved: Map<number, Map<number | null, Resolved>>,
    readonly diagnostics: Diagnostic[],
    private readonly checkpointEntries: Set<number>,
  ) {
    for (const byStep of resolved.values()) for (const r of byStep.values()) this.bySha.set(r.source.sha256, r);
  }

  /**
   * `steps`: the training steps the columns use (null = the final LoRA); they apply to the entries of
   * `checkpointLora` only. Throws an Error naming the entry when a LoRA does not fit the model.
   */
  static async resolve(ctx: StageContext, render: string, spec: RenderSpec, model: { name: string; arch: Sd1Arch }, steps: (number | null)[], checkpointLora: string | null): Promise<RenderLoras> {
    const entries = renderLoraEntries(spec);
    const resolved = new Map<number, Map<number | null, Resolved>>();
    const analyses = new Map<string, LoraAnalysis>();
    const diagnostics: Diagnostic[] = [];
    const checkpointEntries = new Set<number>();
    for (const [i, entry] of entries.entries()) {
      const walks = entry.kind === 'lora' && entry.lora === checkpointLora;
      if (walks) checkpointEntries.add(i);
      const byStep = new Map<number | null, Resolved>();
      resolved.set(i, byStep);
      if (entry.kind === 'hub') refuseFirstError(fitDiagnostics(ctx.config, render, entry, await hubHeaderProblems(ctx, entry, model)));
      for (const step of walks ? [...new Set(steps)] : [null]) {
        const source = await resolveLoraSource(ctx, entry, step);
        let analysis = analyses.get(source.sha256);
        if (!analysis) {
          const found = await analyzeLoraFile(source.path, model.arch);
          if (!found) throw new Error(`render '${render}': ${entry.kind === 'lora' ? source.label : entry.kind === 'file' ? entry.file : entryLabel(entry)} holds no LoRA tensors`);
          analysis = found;
          analyses.set(source.sha256, analysis);
        }
        const shown = entry.kind === 'lora' ? `lora '${source.label}'` : entryLabel(entry);
        const found = fitDiagnostics(ctx.config, render, entry, fitProblems(analysis, shown, model, entry.ignore_unknown_keys));
        refuseFirstError(found);
        if (byStep.size === 0) diagnostics.push(...found); // once per entry
        byStep.set(step, { entry, source, analysis });
      }
      const final = [...byStep.values()].at(-1)!;
      const trigger = triggerWarning(ctx.config, render, entry, entryLabel(entry), final.analysis.triggers, spec.prompts);
      if (trigger) diagnostics.push(trigger);
    }
    return new RenderLoras(entries, resolved, diagnostics, checkpointEntries);
  }

  private at(index: number, step: number | null): Resolved {
    const byStep = this.resolved.get(index)!;
    return byStep.get(this.checkpointEntries.has(index) ? step : null)!;
  }

  /** What a column applies, in order; [] for strength 0 (and when every entry is at 0 / 0). */
  stack(column: { strength: number; step: number | null }): AppliedLora[] {
    if (column.strength === 0) return [];
    return this.entries.flatMap((entry, i) => {
      const strength_model = column.strength * entry.strength_model;
      const strength_clip = column.strength * entry.strength_clip;
      if (strength_model === 0 && strength_clip === 0) return [];
      const { source } = this.at(i, column.step);
      return [{ label: source.label, sha256: source.sha256, strength_model, strength_clip }];
    });
  }

  /** The part of a cell's key that says which LoRAs change its pixels and how. */
  cellKey(stack: AppliedLora[]): Json {
    if (stack.length === 0) return [];
    return [
      LORA_PLAN_VERSION,
      ...stack.map((l) => {
        const a = this.analysisOf(l.sha256);
        return { sha256: l.sha256, strength_model: l.strength_model, strength_clip: l.strength_clip, rank: a.ranks, alpha: a.alphaValues, targets: a.targets as Json };
      }),
    ];
  }

  private analysisOf(sha256: string): LoraAnalysis {
    const found = this.bySha.get(sha256);
    if (!found) throw new Error(`no LoRA with sha256 ${sha256} in this render`);
    return found.analysis;
  }

  /** The worker's lora_files for the LoRAs these stacks use, by sha256. */
  workerFiles(stacks: AppliedLora[][]): Record<string, Json> {
    const files: Record<string, Json> = {};
    for (const { sha256 } of stacks.flat()) {
      const r = this.bySha.get(sha256)!;
      files[sha256] ??= workerLoraFile(r.source.path, r.analysis);
    }
    return files;
  }

  /** Each entry as the report lists it (its final file). */
  summary(ctx: Pick<StageContext, 'config'>): Json[] {
    return this.entries.map((entry, i) => {
      const { source, analysis } = [...this.resolved.get(i)!.values()].at(-1)!;
      return {
        label: source.label,
        ...entrySource(ctx, entry, source),
        sha256: source.sha256,
        family: analysis.family.family === 'sd1' ? FAMILY_LABEL.sd1 : FAMILY_LABEL[analysis.family.family],
        kinds: analysis.kinds,
        keys: analysis.style,
        modules: analysis.binding.modules.length,
        ranks: analysis.ranks,
        alphas: analysis.alphaValues,
        targets: analysis.targets as Json,
        triggers: analysis.triggers,
        strength_model: entry.strength_model,
        strength_clip: entry.strength_clip,
        ignored_keys: entry.ignore_unknown_keys ? analysis.binding.unknownKeys.length : 0,
      };
    });
  }
}

/** Where an entry's LoRA comes from, as cells.json and the report name it. */
function entrySource(ctx: Pick<StageContext, 'config'>, entry: RenderLoraEntry, source: LoraSource): Record<string, Json> {
  if (entry.kind === 'file') return { file: displayPath(ctx.config, loraFilePath(ctx, entry)) };
  if (entry.kind === 'hub') return { hub: entry.hub, file: entry.file, revision: entry.revision, commit: source.commit ?? null };
  return { lora: entry.lora };
}

/**
 * What the LoRA entries put into a render's fingerprint: each entry as written, one scalar per key
 * (so a stale reason reads "loras[0].strength_model 0.8 -> 0.6"), and each file's hash.
 */
export async function renderLoraInputs(ctx: StageContext, spec: RenderSpec): Promise<{ params: Record<string, Json>; files: Record<string, string> }> {
  const files: Record<string, string> = {};
  const params: Record<string, Json> = {};
  const recorded = ctx.options.inputFilesIfMissing as Record<string, string> | undefined;
  for (const [i, entry] of renderLoraEntries(spec).entries()) {
    params[`loras[${i}]`] = entry.kind === 'lora' ? `lora ${entry.lora}` : entry.kind === 'hub' ? `hub ${entry.hub} ${entry.file}@${entry.revision}` : `file ${entry.file}`;
    params[`loras[${i}].strength_model`] = entry.strength_model;
    params[`loras[${i}].strength_clip`] = entry.strength_clip;
    params[`loras[${i}].ignore_unknown_keys`] = entry.ignore_unknown_keys;
    if (entry.kind === 'lora') continue;
    if (entry.kind === 'hub') {
      // the pin (commit, file size and LFS sha256) lands in the lock: later runs, `check` and
      // HF_HUB_OFFLINE=1 take it from there without a request
      params[`loras[${i}].pin`] = (await hubModelFilePin(ctx, { repo: entry.hub, file: entry.file, revision: entry.revision })) as unknown as Json;
      continue;
    }
    const shown = displayPath(ctx.config, resolveUserPath(ctx.config, entry.file));
    // `lorabuild check` in CI may lack a downloaded LoRA: it passes the hashes its lock recorded
    const path = recorded?.[shown] && !existsSync(resolveUserPath(ctx.config, entry.file)) ? null : loraFilePath(ctx, entry);
    files[shown] = path === null ? recorded![shown] : await ctx.hashFile(path);
  }
  return { params, files };
}
