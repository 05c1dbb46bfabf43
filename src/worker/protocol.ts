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
//           whose code is "cancelled". SIGTERM does the same for everything and then exits.
import type { Json } from '../engine/types.js';

export const PROTOCOL_VERSION = 1;

export type WorkerOp =
  | 'hello' // -> { worker_version, protocol, python, torch, cuda, device, gpu_name, gpu_memory, blas }
  | 'build_builtin' // { arch: 'tiny', seed, path } -> writes an LDM-layout .safetensors model
  | 'inspect_checkpoint' // { path } -> { family: 'sd1'|'sd2'|'sdxl'|'unknown', missing[], unexpected[], dtype }
  | 'encode_latents' // { model, items: [{ image, out }] } -> latents (both flip states) per image
  | 'encode_text' // { model, items: [{ ids, out }], clip_skip } -> text-encoder outputs per caption
  | 'train' // { model, items, params, out_dir, resume? } -> checkpoint events, { final, loss_curve }
  | 'sample' // { model, cells: [...] } -> one PNG per cell
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
