// Where the LoRA of a render entry is: one function from an entry to a file, its content hash and a
// label. `file:` entries are the user's files (hashed through the stat memo); `hub:` entries are one
// file of a Hub model repo, pinned in the lock and downloaded into the HF cache (datasets/hub's
// hubModelFile); `lora: NAME` entries are the train stage's outputs in the cache, the final file or
// the checkpoint of a step.
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { resolveUserPath } from '../config/paths.js';
import type { RenderLoraEntry } from '../config/render-loras.js';
import type { LoraSpec } from '../config/schema.js';
import type { StageContext } from '../engine/types.js';
import { hubModelFile } from '../datasets/hub/model-repo.js';

export interface LoraSource {
  /** absolute path to read (a CAS blob for trained LoRAs: read-only) */
  path: string;
  sha256: string;
  /** the name people know it by: the file name without .safetensors, or the lora entry's name */
  label: string;
  /** hub entries: the commit the file was pinned to */
  commit?: string;
}

const padStep = (step: number) => String(step).padStart(5, '0');

/** The train output holding a trained LoRA: `<name>.safetensors`, or `<name>-stepNNNNN.safetensors` for a checkpoint. */
export function trainedLoraFile(name: string, lora: Pick<LoraSpec, 'steps'>, step: number | null): string {
  return step === null || step === lora.steps ? `${name}.safetensors` : `${name}-step${padStep(step)}.safetensors`;
}

/** The file name of a path as written in the lorafile (Windows separators too). */
export function fileName(file: string): string {
  return basename(file.replace(/\\/g, '/'));
}

/** The label of a LoRA file as ComfyUI's lora_name shows it, without .safetensors. */
export function fileLabel(file: string): string {
  return fileName(file).replace(/\.safetensors$/i, '');
}

/** How messages name an entry: its file name, the repo file of a hub entry, or the trained lora. */
export function entryLabel(entry: RenderLoraEntry): string {
  if (entry.kind === 'file') return fileName(entry.file);
  if (entry.kind === 'hub') return `${entry.hub}/${entry.file}`;
  return `lora '${entry.lora}'`;
}

export class LoraSourceError extends Error {}

/** The absolute path of a `file:` entry, or an error that says where it looked. */
export function loraFilePath(ctx: Pick<StageContext, 'config'>, entry: Extract<RenderLoraEntry, { kind: 'file' }>): string {
  const path = resolveUserPath(ctx.config, entry.file);
  if (!existsSync(path)) {
    throw new LoraSourceError(`LoRA file ${entry.file} does not exist (looked at ${path})\n  hint: fix 'file:' in lorafile.yaml; relative paths start at the lorafile folder, ~ is your home folder`);
  }
  return path;
}

/**
 * Resolves an entry to its file. `step`: the training checkpoint of a `lora: NAME` entry (null = the
 * final LoRA); ignored for files.
 */
export async function resolveLoraSource(ctx: StageContext, entry: RenderLoraEntry, step: number | null = null): Promise<LoraSource> {
  if (entry.kind === 'file') {
    const path = loraFilePath(ctx, entry);
    return { path, sha256: await ctx.hashFile(path), label: fileLabel(entry.file) };
  }
  if (entry.kind === 'hub') {
    const { path, sha256, commit } = await hubModelFile(ctx, { repo: entry.hub, file: entry.file, revision: entry.revision });
    return { path, sha256, label: fileLabel(entry.file), commit };
  }
  const spec = ctx.config.loras[entry.lora];
  if (!spec) throw new LoraSourceError(`lora '${entry.lora}' is not defined under loras:`);
  const trainId = `train:${entry.lora}`;
  const outputs = ctx.upstream(trainId);
  const name = trainedLoraFile(entry.lora, spec, step);
  const blob = outputs.files[name];
  if (!blob) {
    const steps = Object.keys(outputs.files)
      .map((f) => /-step(\d+)\.safetensors$/.exec(f)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number);
    const have = [...steps, spec.steps].sort((a, b) => a - b).join(', ');
    throw new LoraSourceError(
      `${trainId} has no ${name} (checkpoint step ${step}); its checkpoints are at steps ${have}\n` +
        `  hint: list steps that are multiples of checkpoint_every (${spec.checkpoint_every}) under checkpoints:, or the final step ${spec.steps}`,
    );
  }
  return { path: ctx.blobPath(blob.sha256), sha256: blob.sha256, label: step === null || step === spec.steps ? entry.lora : `${entry.lora}@${step}` };
}
