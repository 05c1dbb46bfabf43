// The wire protocol between the TypeScript client and the Python worker (lorabuild_worker),
// isolated in one file (esbuild style). JSON lines: one request per line on the worker's stdin,
// one event per line on its stdout; stderr is free-form log.
//
// Request:  { "id": 7, "op": "train", "args": { ... } }
// Events:   { "id": 7, "type": "progress", "step": 10, "total": 100, "loss": 0.12, "its": 3.1 }
//           { "id": 7, "type": "log", "message": "..." }
//           { "id": 7, "type": "checkpoint", "step": 200, "path": "..." }
//           { "id": 7, "type": "done", "result": { ... } }      (last event of a request)
//           { "id": 7, "type": "error", "code": "oom", "message": "...", "hint": "..." } (last event)
// Cancel:   { "id": 8, "op": "cancel", "args": { "target": 7 } }  -> the running request stops at
//           the next step boundary, writes a resumable state and ends with an error event
//           whose code is "cancelled". SIGTERM, SIGINT (a terminal's Ctrl-C reaches the whole process
//           group) and SIGHUP do the same for everything and then the worker exits.
import type { Json } from '../engine/types.js';

export const PROTOCOL_VERSION = 1;

// Ops and their args/results (snake_case on the wire; all paths absolute; tensors in files are
// safetensors written by the worker's own writer):
//
// hello {}                          -> { worker_version, protocol, python, torch, numpy, cuda: bool,
//                                        device: 'cpu'|'cuda', gpu_name?, gpu_memory?, blas, threads }
// build_builtin { arch: 'tiny', seed, path }
//                                   -> { path, arch, keys } writes an LDM-layout model (same key names as
//                                      SD1.5, small widths) deterministically from the seed; metadata
//                                      {"lorabuild.arch": "tiny"}. (builtin: toy is not built: its
//                                      pretrained weights ship in assets/toy.)
// inspect_checkpoint { path, allow_pickle? }
//                                   -> { family: 'sd1'|'sd2'|'sdxl'|'lora'|'unknown', arch: 'sd15'|'tiny'|'toy'|null,
//                                        dtype, missing: [], unexpected: [] } ; refusals are error events
//                                      with code 'unsupported_model' / 'pickle_refused'
// encode_latents { model, arch?, resolution, items: [{ image, out }] }
//                                   -> { items: [{ out }] } ; image = any PIL-readable file; resize (shorter
//                                      side) + center crop to resolution; `out` gets tensors "latent" and
//                                      "latent_flipped" (the posterior mean, already multiplied by the VAE
//                                      scale 0.18215) and "logvar", "logvar_flipped" (its log-variance)
// encode_text { model, arch?, clip_skip, items: [{ ids: number[77], out }] }
//                                   -> { items: [{ out }] } ; `out` gets tensor "context" [77, dim]
// train { model, arch?, items: [{ latents, context }], params: {...LoraSpec fields...}, out_dir,
//         checkpoint_every, steps, metadata: { ss_*: string }, resume?: state_path }
//                                   -> progress events (step, total, loss, its) ; checkpoint events
//                                      { step, path: out_dir/lora-step{N}.safetensors } ;
//                                      done { final: out_dir/lora.safetensors, state: out_dir/state.safetensors,
//                                             loss_curve: [[step, loss], ...], peak_memory,
//                                             warnings: [{ setting, message }]: settings that could
//                                             not take effect (e.g. compile on a torch without it) }
//                                      every file is written to a temp name and renamed.
//                                      A cancelled train (cancel op or a stop signal) leaves its resumable
//                                      state at out_dir/state.safetensors (metadata "lorabuild.state":
//                                      JSON with "step"); the client indexes it so
//                                      the next run passes it back as `resume` (train.ts).
//                                      Optional args (worker side): empty_context: path of the empty
//                                      caption's "context" file, required when params.caption_dropout > 0;
//                                      init_lora: a kohya LoRA file to start from (init_from);
//                                      allow_pickle (also on encode_* and inspect_checkpoint). Resuming
//                                      checks that the LoRA-shaping params match the state and refuses
//                                      to extend a cosine schedule (bad_request). done also carries
//                                      device: 'cpu'|'cuda'. Checkpoints before the resume step are not
//                                      rewritten: the client keeps those of the earlier run.
//                                      Progress events are throttled (about 4 per second, plus the first,
//                                      each checkpoint and the last step); done.loss_curve has every step.
// sample { model, arch?, empty_ids?, lora_files?: { ID: { path, skip_keys: [key], modules: [{ target,
//          kind: 'lora'|'loha'|'lokr', tensors: { role: key } }] } }, cells: [{ cond_ids, cond_weights?,
//          uncond_ids, uncond_weights?, seed, width, height, sampler, scheduler?, steps, cfg, denoise?,
//          init_image?, loras: [{ file: ID, strength_model, strength_clip }], out, parameters }] }
//                                   -> { cells: [{ out }] } ; PNG with tEXt "parameters" = parameters;
//                                      a cell's loras are patched into the weights in order, as
//                                      ComfyUI's Load LoRA does (src/loras/worker-plan.ts builds the
//                                      modules; lora_patch.py applies them); [] = the base model;
//                                      cells with the same stack and settings are batched (CUDA).
//                                      Sampling is ComfyUI's KSampler: sampler and scheduler by its
//                                      names, denoise (0, 1], init_image an image file re-noised to
//                                      denoise. cond_ids/uncond_ids: 77 ids, or a list of such chunks
//                                      (a prompt over 75 tokens); *_weights: one number per id, chunk
//                                      by chunk (text/prompt.ts); any weight != 1 needs empty_ids (the
//                                      empty prompt's 77 ids), which the weights are relative to.
// cancel { target }                 -> the target request stops at the next step boundary, writes its
//                                      resumable state, and ends with error code 'cancelled'
//                                      (the cancel request itself gets done { target } at once)
//
// Error codes: 'bad_request', 'unsupported_model', 'pickle_refused', 'oom', 'nan_loss', 'cancelled',
// 'io', 'internal'. Token ids are CLIP BPE ids (vocabulary 49408, BOS 49406, EOS 49407 also padding,
// context 77) for every model, the builtin tiny and toy included.
export type WorkerOp =
  | 'hello'
  | 'build_builtin'
  | 'inspect_checkpoint'
  | 'encode_latents'
  | 'encode_text'
  | 'train'
  | 'sample'
  | 'cancel';

export interface WorkerRequest {
  id: number;
  op: WorkerOp;
  args: Record<string, Json>;
}

export type WorkerEvent =
  | { id: number; type: 'progress'; step: number; total: number; loss?: number; its?: number; message?: string }
  | { id: number; type: 'log'; message: string }
  | { id: number; type: 'checkpoint'; step: number; path: string }
  | { id: number; type: 'done'; result: Json }
  | { id: number; type: 'error'; code: string; message: string; hint?: string };

export function parseEvent(line: string): WorkerEvent {
  const event = JSON.parse(line) as WorkerEvent;
  if (typeof event !== 'object' || event === null || typeof event.id !== 'number' || typeof event.type !== 'string') {
    throw new Error(`worker sent a malformed event: ${line.slice(0, 200)}`);
  }
  return event;
}
