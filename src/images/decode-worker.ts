// A worker thread of the image pool (decode-pool.ts): decodes images and stores their bytes in the
// CAS itself, so neither the decode nor the blob writes hold up the main thread.
import { parentPort } from 'node:worker_threads';
import { Cas } from '../cache/cas.js';
import { decodeContent } from './decode-content.js';
import type { PoolRequest, PoolResponse } from './decode-pool.js';
import { sourceBytes } from './read-listed.js';

const stores = new Map<string, Cas>();

async function handle(request: PoolRequest): Promise<PoolResponse> {
  let cas = stores.get(request.cacheDir);
  if (!cas) stores.set(request.cacheDir, (cas = new Cas(request.cacheDir)));
  const store = cas;
  try {
    return { id: request.id, result: await decodeContent((bytes) => store.putBuffer(bytes), sourceBytes(request), request.resolution) };
  } catch (err) {
    return { id: request.id, failure: err instanceof Error ? err.message : String(err) };
  }
}

// requests come in batches (one message each way per batch: a message costs more than a small image)
parentPort!.on('message', (batch: PoolRequest[]) => {
  void Promise.all(batch.map(handle)).then((responses) => parentPort!.postMessage(responses));
});
