// The remote cache's HTTP: GET into a file (hashed while it streams), PUT from a file or buffer,
// HEAD. Plain node:http(s) with keep-alive, so a run talks to the cache over a few connections.
// A transfer that sends or receives nothing for `idleMs` is aborted; so is one whose signal fires.
import { createReadStream, createWriteStream } from 'node:fs';
import { createHash } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export class RemoteHttpError extends Error {
  constructor(
    message: string,
    /** the HTTP status, or undefined when no answer came (refused, reset, timeout) */
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'RemoteHttpError';
  }
}

const agents = { http: new http.Agent({ keepAlive: true, maxSockets: 8 }), https: new https.Agent({ keepAlive: true, maxSockets: 8 }) };

export interface RequestOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  idleMs?: number;
  body?: Buffer | { file: string; size: number };
}

function send(method: string, url: string, options: RequestOptions): Promise<IncomingMessage> {
  const target = new URL(url);
  const lib = target.protocol === 'https:' ? https : http;
  const headers: Record<string, string> = { 'user-agent': 'lorabuild/0.1', ...options.headers };
  if (options.body) headers['content-length'] = String(Buffer.isBuffer(options.body) ? options.body.length : options.body.size);
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = lib.request(target, { method, headers, agent: target.protocol === 'https:' ? agents.https : agents.http, signal: options.signal });
    req.setTimeout(options.idleMs ?? 30_000, () => req.destroy(new RemoteHttpError(`no answer for ${Math.round((options.idleMs ?? 30_000) / 1000)} s`, undefined, 'ETIMEDOUT')));
    req.on('error', (err: NodeJS.ErrnoException) => reject(err instanceof RemoteHttpError ? err : new RemoteHttpError(err.code ?? err.message, undefined, err.code ?? err.name)));
    req.on('response', resolve);
    const body = options.body;
    if (!body) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else createReadStream(body.file, { highWaterMark: 1024 * 1024 }).on('error', (err) => req.destroy(err)).pipe(req);
  });
}

async function drain(res: IncomingMessage): Promise<void> {
  res.resume();
  if (!res.complete) await once(res, 'end').catch(() => undefined);
}

/** status of a HEAD, with the size the server reports (content-length) */
export async function head(url: string, options: RequestOptions): Promise<{ status: number; size: number | null }> {
  const res = await send('HEAD', url, options);
  await drain(res);
  const length = Number(res.headers['content-length']);
  return { status: res.statusCode ?? 0, size: Number.isFinite(length) ? length : null };
}

export async function put(url: string, options: RequestOptions): Promise<number> {
  const res = await send('PUT', url, options);
  await drain(res);
  return res.statusCode ?? 0;
}

/** GET into memory, at most `limit` bytes (for action entries); 404 -> null */
export async function getBuffer(url: string, limit: number, options: RequestOptions): Promise<{ status: number; body: Buffer | null }> {
  const res = await send('GET', url, options);
  if (res.statusCode !== 200) {
    await drain(res);
    return { status: res.statusCode ?? 0, body: null };
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      res.destroy();
      throw new RemoteHttpError(`answer larger than ${limit} bytes`, 200, 'E2BIG');
    }
    chunks.push(chunk as Buffer);
  }
  return { status: 200, body: Buffer.concat(chunks) };
}

/** GET into `file`, hashing as it streams; stops past `maxSize` bytes. status != 200: nothing written. */
export async function getToFile(url: string, file: string, maxSize: number, options: RequestOptions): Promise<{ status: number; sha256: string; size: number }> {
  const res = await send('GET', url, options);
  if (res.statusCode !== 200) {
    await drain(res);
    return { status: res.statusCode ?? 0, sha256: '', size: 0 };
  }
  const hash = createHash('sha256');
  let size = 0;
  let tooBig = false;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > maxSize) {
        tooBig = true;
        done(new RemoteHttpError(`more than ${maxSize} bytes`, 200, 'E2BIG'));
        return;
      }
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(res, count, createWriteStream(file, { highWaterMark: 4 * 1024 * 1024 }));
  } catch (err) {
    if (!tooBig) throw err instanceof RemoteHttpError ? err : new RemoteHttpError((err as NodeJS.ErrnoException).code ?? (err as Error).message, 200, 'ECONNRESET');
  }
  if (!tooBig && !res.complete) throw new RemoteHttpError('the connection closed mid-transfer', 200, 'ECONNRESET');
  return { status: 200, sha256: hash.digest('hex'), size };
}
