// The remote cache's parts: netrc, settings (flag > env > user config), credentials, and the client
// against a loopback HTTP server that misbehaves on purpose (poisoned action entries, errors, auth).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNetrc } from '../src/cache/remote/netrc.js';
import { remoteCredentials, remoteSettings } from '../src/cache/remote/settings.js';
import { RemoteCache } from '../src/cache/remote/remote-cache.js';
import { ConfigError } from '../src/config/errors.js';
import { Cas } from '../src/cache/cas.js';
import { ActionCache, type ActionEntry } from '../src/cache/action-cache.js';
import type { StageNode } from '../src/engine/types.js';
import { makeTempDir } from './helpers/cli.js';

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-remote-unit-');
});
afterAll(() => tmp.cleanup());

const NO_USER_CONFIG = { LORABUILD_CONFIG: '/nonexistent/config.yaml', HOME: '/nonexistent' };

describe('netrc', () => {
  const text = `# class cache
machine other.example login x password y
machine cache.example.edu
  login ta
  password s3cret
macdef init
  machine cache.example.edu login wrong password wrong

default login anon password guest
`;
  it('finds the machine entry, skips macdef bodies and comments, falls back to default', () => {
    expect(parseNetrc(text, 'cache.example.edu')).toEqual({ login: 'ta', password: 's3cret' });
    expect(parseNetrc(text, 'CACHE.example.edu')).toEqual({ login: 'ta', password: 's3cret' });
    expect(parseNetrc(text, 'elsewhere')).toEqual({ login: 'anon', password: 'guest' });
    expect(parseNetrc('machine a login b', 'a')).toBeUndefined();
  });
});

describe('remote settings', () => {
  it('--remote-cache beats LORABUILD_REMOTE_CACHE beats the user config; "" turns it off', () => {
    const file = join(tmp.dir, 'user.yaml');
    writeFileSync(file, 'cache:\n  remote: http://user.example:9090/lab/\n  read_only: true\n');
    const env = { LORABUILD_CONFIG: file };
    expect(remoteSettings({}, env)).toEqual({ url: 'http://user.example:9090/lab', readOnly: true, source: 'user config', userConfig: file });
    expect(remoteSettings({}, { ...env, LORABUILD_REMOTE_CACHE: 'http://env.example' })).toMatchObject({ url: 'http://env.example', source: 'LORABUILD_REMOTE_CACHE', readOnly: true });
    expect(remoteSettings({ url: 'https://flag.example/x' }, { ...env, LORABUILD_REMOTE_CACHE: 'http://env.example' })).toMatchObject({ url: 'https://flag.example/x', source: '--remote-cache' });
    expect(remoteSettings({ url: '' }, env)).toBeNull();
    expect(remoteSettings({}, NO_USER_CONFIG)).toBeNull();
    expect(remoteSettings({ url: 'http://a.example', readOnly: true }, NO_USER_CONFIG)?.readOnly).toBe(true);
    expect(remoteSettings({}, { ...NO_USER_CONFIG, LORABUILD_REMOTE_CACHE: 'http://a.example', LORABUILD_REMOTE_READ_ONLY: '1' })?.readOnly).toBe(true);
  });

  it('refuses credentials in the URL without repeating them, and other bad URLs', () => {
    const attempt = (url: string) => {
      try {
        remoteSettings({ url }, NO_USER_CONFIG);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        const d = (err as ConfigError).diagnostics[0];
        return `${d.message} | ${d.hint}`;
      }
      return 'accepted';
    };
    const said = attempt('http://ta:hunter2@cache.example.edu/');
    expect(said).toMatch(/carries credentials/);
    expect(said).toMatch(/netrc.*machine cache\.example\.edu|LORABUILD_REMOTE_TOKEN/);
    expect(said).not.toContain('hunter2');
    expect(attempt('ftp://cache.example.edu')).toMatch(/only http:\/\/ and https:\/\//);
    expect(attempt('cache.example.edu')).toMatch(/is not a URL/);
    expect(attempt('http://cache.example.edu/?token=1')).toMatch(/query or fragment/);
  });

  it('a broken user config is an error with file, line and column', () => {
    const file = join(tmp.dir, 'bad.yaml');
    writeFileSync(file, 'cache:\n  remote: http://x.example\n  readonly: true\n');
    try {
      remoteSettings({}, { LORABUILD_CONFIG: file });
      expect.unreachable();
    } catch (err) {
      const d = (err as ConfigError).diagnostics[0];
      expect(d).toMatchObject({ file, line: 3, col: 3 });
      expect(d.message).toMatch(/readonly/);
    }
  });

  it('credentials: LORABUILD_REMOTE_TOKEN as bearer, else the netrc login of the host', () => {
    const netrc = join(tmp.dir, 'netrc');
    writeFileSync(netrc, 'machine cache.example.edu login ta password s3cret\n');
    expect(remoteCredentials('http://cache.example.edu/x', { NETRC: netrc, LORABUILD_REMOTE_TOKEN: 'abc' }).header).toBe('Bearer abc');
    expect(remoteCredentials('http://cache.example.edu/x', { NETRC: netrc }).header).toBe(`Basic ${Buffer.from('ta:s3cret').toString('base64')}`);
    expect(remoteCredentials('http://other.example/x', { NETRC: netrc }).header).toBeUndefined();
  });
});

describe('remote cache client against a misbehaving server', () => {
  let server: Server;
  let url = '';
  const store = new Map<string, Buffer>();
  const seen: { method: string; path: string; auth?: string }[] = [];
  let failWith: number | null = null;

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res) => {
      seen.push({ method: req.method!, path: req.url!, auth: req.headers.authorization });
      if (failWith) {
        res.writeHead(failWith).end();
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'PUT') {
          store.set(req.url!, Buffer.concat(chunks));
          res.writeHead(201).end();
        } else {
          const body = store.get(req.url!);
          if (!body) res.writeHead(404).end();
          else res.writeHead(200, { 'content-length': body.length }).end(req.method === 'HEAD' ? undefined : body);
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const node: StageNode = { id: 'train:x', kind: 'train', target: 'x', deps: [], resource: 'gpu' };
  const fp = 'a'.repeat(64);
  const blob = Buffer.from('lora bytes');
  const sha = createHash('sha256').update(blob).digest('hex');
  const entry = (over: Partial<ActionEntry> = {}): ActionEntry => ({
    version: 1, stage: 'train:x', kind: 'train', fingerprint: fp, params: {}, upstream: {},
    outputs: { files: { 'x.safetensors': { sha256: sha, size: blob.length } }, meta: { steps: 1 } },
    refs: [], items: [], createdAt: '2026-01-01T00:00:00Z', durationMs: 1, ...over,
  });
  const fresh = (name: string) => {
    const root = join(tmp.dir, name);
    mkdirSync(root, { recursive: true });
    return { cas: new Cas(root), actions: new ActionCache(root) };
  };
  const client = (warnings: string[], readOnly = false, env: NodeJS.ProcessEnv = {}) =>
    new RemoteCache({ url, readOnly, source: '--remote-cache' }, { warn: (l) => warnings.push(l), env: { ...NO_USER_CONFIG, ...env } });

  it('uploads blobs before the action entry, with the bearer token; a second client restores it', async () => {
    const warnings: string[] = [];
    const a = fresh('a');
    a.cas.putBuffer(blob);
    seen.length = 0;
    await client(warnings, false, { LORABUILD_REMOTE_TOKEN: 'tkn' }).upload(entry({ refs: ['b'.repeat(64)], items: ['train/xx'] }), a.cas);
    expect(seen.map((s) => `${s.method} ${s.path}`)).toEqual([`HEAD /cas/${sha}`, `PUT /cas/${sha}`, `PUT /ac/${fp}`]);
    expect(seen.every((s) => s.auth === 'Bearer tkn')).toBe(true);
    expect(JSON.parse(store.get(`/ac/${fp}`)!.toString())).toMatchObject({ refs: [], items: [] }); // local gc bookkeeping stays local

    const b = fresh('b');
    const out = await client(warnings).fetch(node, fp, b.cas, b.actions);
    expect(out?.files['x.safetensors'].sha256).toBe(sha);
    expect(readFileSync(b.cas.path(sha))).toEqual(blob);
    expect(b.actions.get(fp)?.outputs.meta).toEqual({ steps: 1 });
    expect(warnings).toEqual([]);
  });

  it('read-only uploads nothing; an existing blob is not uploaded twice', async () => {
    const a = fresh('a');
    seen.length = 0;
    await client([], true).upload(entry(), a.cas);
    expect(seen).toEqual([]);
    await client([]).upload(entry(), a.cas);
    expect(seen.map((s) => s.method)).toEqual(['HEAD', 'PUT']);
  });

  it('poisoned action entries are ignored with a warning and nothing enters the local cache', async () => {
    const cases: [Buffer | string, RegExp][] = [
      ['{"version":1,"stage":"train:x"', /not JSON/],
      [JSON.stringify(entry({ fingerprint: 'c'.repeat(64) })), /for fingerprint cccccccccccc…/],
      [JSON.stringify(entry({ stage: 'render:y', kind: 'render' })), /for render:y, not train:x/],
      [JSON.stringify(entry({ outputs: { files: { '../../etc/passwd': { sha256: sha, size: 1 } }, meta: null } })), /bad output name/],
      [JSON.stringify(entry({ outputs: { files: { 'x.safetensors': { sha256: 'zz', size: 1 } }, meta: null } })), /no valid sha256/],
      [JSON.stringify(entry({ outputs: { files: { 'y.safetensors': { sha256: 'd'.repeat(64), size: 5 } }, meta: null } })), /is not on the server/],
    ];
    for (const [i, [body, why]] of cases.entries()) {
      store.set(`/ac/${fp}`, Buffer.from(body));
      const warnings: string[] = [];
      const local = fresh(`poison-${i}`);
      expect(await client(warnings).fetch(node, fp, local.cas, local.actions)).toBeUndefined();
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(why);
      expect(warnings[0]).toMatch(/rebuilding it locally/);
      expect(local.actions.has(fp)).toBe(false);
    }
  });

  it('a blob whose bytes do not match its sha256 or size is refused, and re-uploaded over on the next upload', async () => {
    store.set(`/ac/${fp}`, Buffer.from(JSON.stringify(entry())));
    for (const [bad, why] of [
      [Buffer.from('lora bytez'), /corrupted on the server: sha256 [0-9a-f]{12}… instead of/],
      [blob.subarray(0, 4), /corrupted on the server: 4 bytes instead of 10 \(truncated or replaced\)/],
      [Buffer.concat([blob, Buffer.from('+more')]), /corrupted on the server: \d+ bytes instead of 10/],
    ] as const) {
      store.set(`/cas/${sha}`, bad);
      const warnings: string[] = [];
      const remote = client(warnings);
      const local = fresh(`bad-${bad.length}`);
      expect(await remote.fetch(node, fp, local.cas, local.actions)).toBeUndefined();
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(why);
      expect(local.cas.has(sha)).toBe(false);
      expect(local.actions.has(fp)).toBe(false);
      // the rebuilt stage's upload replaces the bad copy although HEAD may say the blob is there
      local.cas.putBuffer(blob);
      await remote.upload(entry(), local.cas);
      expect(store.get(`/cas/${sha}`)).toEqual(blob);
    }
  });

  it('a server error turns the cache off for the command with one warning; a 404 is a plain miss', async () => {
    const warnings: string[] = [];
    const remote = client(warnings);
    const local = fresh('err');
    expect(await remote.fetch(node, 'e'.repeat(64), local.cas, local.actions)).toBeUndefined();
    expect(warnings).toEqual([]);
    expect(remote.stats.misses).toBe(1);
    failWith = 503;
    try {
      expect(await remote.fetch(node, fp, local.cas, local.actions)).toBeUndefined();
      expect(await remote.fetch(node, fp, local.cas, local.actions)).toBeUndefined();
      await remote.upload(entry(), local.cas);
    } finally {
      failWith = null;
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/answered 503 while looking up train:x; building locally without it/);
    expect(remote.available).toBe(false);
  });

  it('an upload refused with 403 stops uploads with one warning and keeps reading', async () => {
    const warnings: string[] = [];
    const remote = client(warnings);
    const local = fresh('a');
    failWith = 403;
    try {
      await remote.upload(entry({ fingerprint: 'f'.repeat(64) }), local.cas);
      await remote.upload(entry({ fingerprint: 'f'.repeat(64) }), local.cas);
    } finally {
      failWith = null;
    }
    expect(warnings).toHaveLength(1);
    expect(existsSync(local.cas.path(sha))).toBe(true);
  });
});
