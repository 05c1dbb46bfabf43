// `lorabuild check` on a trained LoRA it does not re-train: the committed .safetensors files carry
// their own record of how they were made (kohya's ss_* metadata, the content hash of their tensors),
// and that record must agree with the lock. This names the LoRA when its bytes were changed and
// its hash updated in the lock, and the setting when a lock value was edited to match a rubric.
import { basename } from 'node:path';
import { lockPathFor } from '../engine/lockfile.js';
import type { CrossCheckContext, CrossCheckProblem, Json } from '../engine/types.js';
import { fileTensorContentHash } from '../safetensors/lora-metadata.js';
import { readSafetensorsHeader } from '../safetensors/io.js';

type Compare = (meta: string, param: Json | undefined) => boolean;

const number: Compare = (meta, param) => typeof param === 'number' && meta.trim() !== '' && Number(meta) === param;
const text: Compare = (meta, param) => meta === param;
const bool: Compare = (meta, param) => (meta === 'True') === param && (meta === 'True' || meta === 'False');
const optionalNumber: Compare = (meta, param) => (param === undefined || param === null ? meta === 'None' : number(meta, param));
const resolution: Compare = (meta, param) => typeof param === 'number' && meta === `(${param}, ${param})`;

/** metadata key -> the lock param it records, and how they compare */
const SETTINGS: [meta: string, param: string, same: Compare][] = [
  ['ss_network_dim', 'rank', number],
  ['ss_network_alpha', 'alpha', number],
  ['ss_learning_rate', 'learning_rate', number],
  ['ss_batch_size_per_device', 'batch_size', number],
  ['ss_gradient_accumulation_steps', 'gradient_accumulation', number],
  ['ss_seed', 'seed', number],
  ['ss_lr_scheduler', 'lr_scheduler', text],
  ['ss_lr_warmup_steps', 'warmup_steps', number],
  ['ss_clip_skip', 'clip_skip', number],
  ['ss_noise_offset', 'noise_offset', number],
  ['ss_caption_dropout_rate', 'caption_dropout', number],
  ['ss_flip_aug', 'flip', bool],
  ['ss_mixed_precision', 'mixed_precision', text],
  ['ss_min_snr_gamma', 'min_snr_gamma', optionalNumber],
  ['ss_resolution', 'resolution', resolution],
  ['lorabuild.targets', 'targets', text],
];

const STEP_FILE = /-step(\d+)\.safetensors$/;

export async function crossCheckTrain(ctx: CrossCheckContext): Promise<CrossCheckProblem[]> {
  const problems: CrossCheckProblem[] = [];
  const params = ctx.entry.params;
  const lockName = basename(lockPathFor(ctx.config.file));
  for (const name of Object.keys(ctx.entry.outputs).sort()) {
    if (!name.endsWith('.safetensors') || name === 'resume-state.safetensors') continue;
    const abs = ctx.verifiedOutput(ctx.node.id, name);
    if (!abs) continue;
    const shown = ctx.display(abs);
    const problem = (message: string) => problems.push({ message, file: shown });
    let metadata: Record<string, string>;
    try {
      metadata = (await readSafetensorsHeader(abs)).metadata;
    } catch (err) {
      problem(`${shown} is not a readable LoRA: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    const recorded = metadata.sshs_model_hash;
    const actual = await fileTensorContentHash(abs);
    if (recorded !== actual) {
      problem(
        recorded
          ? `${shown}: its tensors were changed after training (their sha256 ${actual.slice(0, 12)}… is not the sshs_model_hash ${recorded.slice(0, 12)}… it was written with), and ${lockName} records the changed file`
          : `${shown} has no sshs_model_hash: lorabuild writes one into every LoRA it trains, so this file was replaced or rewritten`,
      );
    }
    if (metadata['lorabuild.lora'] !== ctx.node.target) problem(`${shown} was trained for lora '${metadata['lorabuild.lora'] ?? '(none)'}', not '${ctx.node.target}'`);
    const stepMatch = STEP_FILE.exec(name);
    const steps = stepMatch ? Number(stepMatch[1]) : params.steps;
    const checks: [string, string, Json | undefined, Compare][] = [...SETTINGS.map(([meta, param, same]) => [meta, param, params[param], same] as [string, string, Json | undefined, Compare]), ['ss_steps', stepMatch ? 'the checkpoint step' : 'steps', steps, number]];
    for (const [meta, param, value, same] of checks) {
      if (!(param in params) && param !== 'the checkpoint step' && meta !== 'ss_min_snr_gamma') continue;
      const found = metadata[meta];
      if (found !== undefined && same(found, value)) continue;
      problem(`${shown} was trained with ${param} ${found ?? '(not recorded)'} (its ${meta}), but ${lockName} records ${value === undefined || value === null ? 'none' : JSON.stringify(value)}: the LoRA or the lock was edited`);
    }
    const identity = params.model_identity;
    if (typeof identity === 'string' && identity.startsWith('sha256:') && metadata.ss_new_sd_model_hash !== identity.slice('sha256:'.length)) {
      problem(`${shown} was trained on the base model ${metadata.ss_new_sd_model_hash?.slice(0, 12) ?? '(not recorded)'}…, but ${lockName} records ${identity.slice(7, 19)}… for model '${String(params.model)}'`);
    }
  }
  return problems;
}
