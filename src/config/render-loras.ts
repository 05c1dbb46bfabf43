// What a render applies, read from its spec in one place: the ordered LoRA entries (the `loras:` list,
// or the `lora: NAME` shorthand as a one-entry list) and the base model. The planner, the render and
// score stages, watch and check all ask here, so the shorthand means the same everywhere.
import type { PathSegment } from './locate.js';
import type { Config, RenderSpec } from './schema.js';

interface EntryCommon {
  strength_model: number;
  strength_clip: number;
  ignore_unknown_keys: boolean;
  /** where the entry is written, below ['renders', NAME] (for diagnostics) */
  at: PathSegment[];
}

/** A LoRA of a render: a local file, one file of a Hub model repo, or a LoRA this lorafile trains. */
export type RenderLoraEntry =
  | (EntryCommon & { kind: 'file'; file: string })
  | (EntryCommon & { kind: 'hub'; hub: string; file: string; revision: string })
  | (EntryCommon & { kind: 'lora'; lora: string });

export function renderLoraEntries(spec: Pick<RenderSpec, 'lora' | 'loras'>): RenderLoraEntry[] {
  if (spec.loras) {
    return spec.loras.flatMap((e, i): RenderLoraEntry[] => {
      const common = { strength_model: e.strength_model, strength_clip: e.strength_clip, ignore_unknown_keys: e.ignore_unknown_keys, at: ['loras', i] };
      if (e.hub !== undefined && e.file !== undefined) return [{ ...common, kind: 'hub', hub: e.hub, file: e.file, revision: e.revision ?? 'main' }];
      if (e.file !== undefined && e.hub === undefined) return [{ ...common, kind: 'file', file: e.file }];
      if (e.lora !== undefined) return [{ ...common, kind: 'lora', lora: e.lora }];
      return []; // refused by the cross-checks
    });
  }
  if (spec.lora) return [{ kind: 'lora', lora: spec.lora, strength_model: 1, strength_clip: 1, ignore_unknown_keys: false, at: ['lora'] }];
  return [];
}

/** Names of the trained LoRAs (`lora: NAME` entries) a render applies, in order, without repeats. */
export function trainedLoraNames(spec: Pick<RenderSpec, 'lora' | 'loras'>): string[] {
  return [...new Set(renderLoraEntries(spec).flatMap((e) => (e.kind === 'lora' ? [e.lora] : [])))];
}

/** The base model of a render: `model:`, else the model its first trained LoRA was trained on. */
export function renderModelName(config: Pick<Config, 'loras'>, spec: Pick<RenderSpec, 'model' | 'lora' | 'loras'>): string | undefined {
  if (spec.model) return spec.model;
  const first = trainedLoraNames(spec)[0];
  return first ? config.loras[first]?.model : undefined;
}

/** The trained LoRA whose checkpoints a `checkpoints:` axis walks (the cross-checks allow exactly one). */
export function checkpointLora(spec: Pick<RenderSpec, 'lora' | 'loras'>): string | undefined {
  const names = trainedLoraNames(spec);
  return names.length === 1 ? names[0] : undefined;
}
