// Images of a dataset decoded and stored by a pool of worker threads, one per core, a few images in
// flight on each: the main thread keeps reading rows and writing item records while the workers
// decode and write blobs (BENCHMARKS.md, "Hub datasets"). Started on the first image that is not in
// the item memo (a no-op run starts no thread); the threads hold the process only while they work.
// Where the worker script is not built (tests running the TypeScript sources before a build), the
// main thread decodes.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { decodeContent, type DecodedContent, type Store } from './decode-content.js';
import { sourceBytes, type ImageSource } from './read-listed.js';
import { workerScript } from '../engine/worker-script.js';

export type PoolRequest = ImageSource & {
  id: number;
  cacheDir: string;
  /** center-crop to this square size as PNG, or null */
  resolution: number | null;
};

export type PoolResponse = { id: number; result: DecodedContent } | { id: number; failure: string };

const PER_WORKER = 3;

interface Slot {
  worker: Worker;
  busy: number;
  /** requests not sent yet: sent together once this turn of the event loop is over */
  outbox: PoolRequest[];
}

class DecodePool {
  private readonly slots: Slot[] = [];
  /** a timer that holds the process while answers are pending (the threads themselves never do) */
  private keepAlive: NodeJS.Timeout | undefined;
  private readonly waiting = new Map<number, { resolve: (r: DecodedContent) => void; reject: (e: Error) => void; slot: Slot }>();
  private readonly queue: Array<() => void> = [];
  private nextId = 0;

  constructor(script: URL, size: number) {
    for (let i = 0; i < size; i++) {
      const slot: Slot = { worker: new Worker(script), busy: 0, outbox: [] };
      slot.worker.on('message', (responses: PoolResponse[]) => responses.forEach((r) => this.answer(r)));
      slot.worker.on('error', (err) => this.failAll(err));
      slot.worker.unref(); // after the listeners: adding one refs the thread's port again
      this.slots.push(slot);
    }
  }

  private answer(response: PoolResponse): void {
    const pending = this.waiting.get(response.id);
    if (!pending) return;
    this.waiting.delete(response.id);
    pending.slot.busy--;
    if (this.waiting.size === 0) {
      clearInterval(this.keepAlive);
      this.keepAlive = undefined;
    }
    if ('failure' in response) pending.reject(new Error(response.failure));
    else pending.resolve(response.result);
    this.queue.shift()?.();
  }

  private failAll(err: Error): void {
    for (const pending of this.waiting.values()) pending.reject(err);
    this.waiting.clear();
    clearInterval(this.keepAlive);
    pool = undefined;
  }

  /**
   * The least busy slot, reserved (busy counted) in the same synchronous step that picks it: callers
   * that start together would otherwise all see the same idle slot, and one thread got every image.
   */
  private async reserveSlot(): Promise<Slot> {
    for (;;) {
      const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
      if (slot.busy < PER_WORKER) {
        slot.busy++;
        return slot;
      }
      await new Promise<void>((resolve) => this.queue.push(resolve));
    }
  }

  private send(slot: Slot): void {
    const batch = slot.outbox;
    slot.outbox = [];
    slot.worker.postMessage(batch, batch.flatMap((r) => ('bytes' in r ? [r.bytes.buffer as ArrayBuffer] : [])));
  }

  async decode(cacheDir: string, source: ImageSource, resolution: number | null): Promise<DecodedContent> {
    const slot = await this.reserveSlot();
    this.keepAlive ??= setInterval(() => undefined, 1 << 30);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, slot });
      // bytes: a copy of their own, moved (not cloned) to the thread: they may view a larger parquet page
      const request: PoolRequest = 'bytes' in source ? { id, cacheDir, bytes: new Uint8Array(source.bytes), resolution } : { id, cacheDir, file: source.file, resolution };
      if (slot.outbox.push(request) === 1) setImmediate(() => this.send(slot));
    });
  }
}

let pool: DecodePool | undefined;

/**
 * Decodes an image and stores it (and its crop) in the CAS at `cacheDir` on a worker thread; where
 * there is no worker script, on this thread through `store`.
 */
export async function decodeAndStore(cacheDir: string, source: ImageSource, resolution: number | null, store: Store): Promise<DecodedContent> {
  if (!pool) {
    const script = workerScript('images/decode-worker.js');
    if (!script) return decodeContent(store, sourceBytes(source), resolution);
    pool = new DecodePool(script, Math.max(1, Math.min(4, availableParallelism())));
  }
  return pool.decode(cacheDir, source, resolution);
}
