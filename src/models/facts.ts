// What a stage knows about its base model before building or loading it: the identity that enters
// fingerprints, the architecture, the model's own tokenizer folder, and for hub models the pin to
// record in the lock. Errors are ModelErrors naming the model entry.
import type { Json } from '../engine/types.js';
import type { ModelArch } from './arch.js';

export class ModelError extends Error {
  constructor(
    readonly model: string,
    message: string,
    readonly hint?: string,
  ) {
    super(`model '${model}': ${message}${hint ? `\n  hint: ${hint}` : ''}`);
    this.name = 'ModelError';
  }
}

export interface ModelFacts {
  /** enters fingerprints: sha256:<file>, diffusers:<hash of the chosen files>, builtin:... */
  identity: string;
  /** null: not known on this machine (a checkpoint that is not here) */
  arch: ModelArch | null;
  /** a folder holding the model's own tokenizer (vocab.json + merges.txt, or tokenizer/) */
  tokenizerDir?: string;
  /** hub models: what the stage records in its params (`model_hub`) so the next run needs no request */
  pin?: Json;
}

/** A base model on disk for the worker: a single file or a diffusers folder. */
export interface ResolvedModel {
  path: string;
  /** the model's identity hash (a single file's sha256; for a folder, the hash of its chosen files) */
  sha256: string;
  arch: ModelArch;
  /** the model entry allows pickles (`allow_pickle: true`): the worker may unpickle its .ckpt/.bin weights */
  allowPickle?: boolean;
}

/** fp16 variants of diffusers weights are chosen when the device is CUDA. */
export function prefersHalf(device: string | undefined): boolean {
  return device === 'cuda' || (device?.startsWith('cuda:') ?? false);
}
