// A real HTTP server on 127.0.0.1 that speaks the Hugging Face hub routes lorabuild uses, over
// in-memory fixture repos (datasets and models): revision, tree (paginated with a Link header and a
// cursor), paths-info, and resolve (Range, ETag, X-Repo-Commit, X-Linked-Etag/X-Linked-Size for
// LFS). It logs every request, can gate a repo behind tokens, cut a download off mid-file, accept
// requests and never answer them, lie about a file's size, and move a branch.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FixtureFile {
  path: string;
  content: Uint8Array;
  /** stored with git LFS; default: by extension, as the hub's default .gitattributes does */
  lfs?: boolean;
}

export type RepoKind = 'dataset' | 'model';

export interface LoggedRequest {
  method: string;
  /** decoded path, without the query */
  path: string;
  kind: 'revision' | 'tree' | 'paths-info' | 'resolve' | 'other';
  range?: string;
  status: number;
  authorization?: string;
}

interface StoredFile {
  path: string;
  content: Buffer;
  oid: string;
  lfs?: { oid: string; size: number; pointerSize: number };
}

interface Repo {
  commits: Map<string, Map<string, StoredFile>>;
  refs: Map<string, string>;
  /** tokens that may download files (gated) or see the repo at all (private) */
  tokens?: Set<string>;
  access: 'public' | 'gated' | 'private';
}

const LFS_BY_DEFAULT = /\.(parquet|arrow|png|jpe?g|webp|gif|bmp|tiff?|zip|gz|zst|safetensors|bin)$/i;

function gitOid(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

function store(file: FixtureFile): StoredFile {
  const content = Buffer.from(file.content.buffer, file.content.byteOffset, file.content.byteLength);
  const lfs = file.lfs ?? LFS_BY_DEFAULT.test(file.path);
  if (!lfs) return { path: file.path, content, oid: gitOid(content) };
  const sha256 = createHash('sha256').update(content).digest('hex');
  const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${content.length}\n`;
  return { path: file.path, content, oid: gitOid(Buffer.from(pointer)), lfs: { oid: sha256, size: content.length, pointerSize: pointer.length } };
}

export class HubServer {
  readonly log: LoggedRequest[] = [];
  private readonly repos = new Map<string, Repo>();
  private readonly drops = new Map<string, { afterBytes: number; times: number }>();
  private readonly announced = new Map<string, number>();
  private failures: { status: number; times: number; retryAfter?: number } | undefined;
  private hangs = 0;
  private readonly hanging = new Set<ServerResponse>();
  private commitCounter = 0;
  private server!: Server;
  url = '';

  private constructor(readonly pageSize: number) {}

  static async start(options: { pageSize?: number } = {}): Promise<HubServer> {
    const hub = new HubServer(options.pageSize ?? 1000);
    hub.server = createServer((req, res) => {
      hub.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) hub.send(req, res, 'other', 500, { error: String(err) });
        else res.destroy();
      });
    });
    await new Promise<void>((resolve) => hub.server.listen(0, '127.0.0.1', resolve));
    hub.url = `http://127.0.0.1:${(hub.server.address() as AddressInfo).port}`;
    return hub;
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /**
   * Creates a repo whose main points at a first commit of these files; returns that commit's sha.
   * Like the hub, a gated repo shows its metadata and file list to anyone but serves files only to
   * the given tokens; a private repo does not exist for anyone else.
   */
  addRepo(repo: string, files: FixtureFile[], options: { gated?: string[]; private?: string[]; kind?: RepoKind } = {}): string {
    const tokens = options.gated ?? options.private;
    const key = `${options.kind ?? 'dataset'}:${repo}`;
    this.repos.set(key, {
      commits: new Map(),
      refs: new Map(),
      access: options.gated ? 'gated' : options.private ? 'private' : 'public',
      ...(tokens ? { tokens: new Set(tokens) } : {}),
    });
    return this.commit(repo, files, 'main', options.kind);
  }

  /** A new commit with these files, and `branch` moved to it. */
  commit(repo: string, files: FixtureFile[], branch = 'main', kind: RepoKind = 'dataset'): string {
    const state = this.repos.get(`${kind}:${repo}`);
    if (!state) throw new Error(`no fixture repo ${repo}`);
    const stored = new Map(files.map((f) => [f.path, store(f)]));
    const sha = createHash('sha1')
      .update(`${repo} ${++this.commitCounter} ${[...stored.values()].map((f) => `${f.path}:${f.oid}`).join(',')}`)
      .digest('hex');
    state.commits.set(sha, stored);
    state.refs.set(branch, sha);
    return sha;
  }

  setRef(repo: string, ref: string, sha: string, kind: RepoKind = 'dataset'): void {
    this.repos.get(`${kind}:${repo}`)!.refs.set(ref, sha);
  }

  /** The next `times` requests are accepted and never answered (a stuck hub or proxy). */
  hangNext(times: number): void {
    this.hangs = times;
  }

  /** The file list says this file has `size` bytes, whatever it has. */
  announceSize(repo: string, path: string, size: number): void {
    this.announced.set(`${repo}/${path}`, size);
  }

  /** The next `times` downloads of this file stop after `afterBytes` bytes (the connection is destroyed). */
  dropAfter(repo: string, path: string, afterBytes: number, times = 1): void {
    this.drops.set(`${repo}/${path}`, { afterBytes, times });
  }

  /** The next `times` requests of any kind answer `status` (e.g. 429 with Retry-After, or 503). */
  failNext(status: number, times: number, retryAfter?: number): void {
    this.failures = { status, times, ...(retryAfter === undefined ? {} : { retryAfter }) };
  }

  /** requests for file contents */
  contentRequests(): LoggedRequest[] {
    return this.log.filter((r) => r.kind === 'resolve' && r.method === 'GET');
  }

  clearLog(): void {
    this.log.length = 0;
  }

  private send(req: IncomingMessage, res: ServerResponse, kind: LoggedRequest['kind'], status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.record(req, kind, status);
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(req.method === 'HEAD' ? undefined : text);
  }

  private record(req: IncomingMessage, kind: LoggedRequest['kind'], status: number): void {
    const url = new URL(req.url ?? '/', this.url);
    this.log.push({
      method: req.method ?? 'GET',
      path: decodeURIComponent(url.pathname),
      kind,
      status,
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    });
  }

  private entry(repo: string, file: StoredFile): Record<string, unknown> {
    const size = this.announced.get(`${repo}/${file.path}`) ?? (file.lfs ? file.lfs.size : file.content.length);
    return { type: 'file', oid: file.oid, size, path: file.path, ...(file.lfs ? { lfs: { ...file.lfs, size } } : {}) };
  }

  /** [repo kind, repo id, route, rest] of a hub URL, or undefined */
  private route(pathname: string): [RepoKind, string, string, string] | undefined {
    const api = /^\/api\/(datasets|models)\/([^/]+\/[^/]+)\/(revision|tree|paths-info)\/(.+)$/.exec(pathname);
    if (api) return [api[1] === 'datasets' ? 'dataset' : 'model', api[2], api[3], api[4]];
    const dataset = /^\/datasets\/([^/]+\/[^/]+)\/resolve\/(.+)$/.exec(pathname);
    if (dataset) return ['dataset', dataset[1], 'resolve', dataset[2]];
    const model = /^\/([^/]+\/[^/]+)\/resolve\/(.+)$/.exec(pathname);
    if (model && !model[1].startsWith('api/') && !model[1].startsWith('datasets/')) return ['model', model[1], 'resolve', model[2]];
    return undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    if (this.hangs > 0) {
      this.hangs--;
      this.record(req, 'other', 0);
      this.hanging.add(res);
      return;
    }
    const routed = this.route(url.pathname);
    if (!routed) return this.send(req, res, 'other', 404, { error: 'Not Found' });
    const [repoKind, repoId, route, rest] = routed;
    const kind = route as LoggedRequest['kind'];
    if (this.failures && this.failures.times > 0) {
      this.failures.times--;
      const headers: Record<string, string> = this.failures.retryAfter === undefined ? {} : { 'retry-after': String(this.failures.retryAfter) };
      return this.send(req, res, kind, this.failures.status, { error: 'try again later' }, headers);
    }
    const found = this.repos.get(`${repoKind}:${decodeURIComponent(repoId)}`);
    const auth = req.headers.authorization;
    const token = auth?.replace(/^Bearer /, '');
    const repo = found && (found.access !== 'private' || (token && found.tokens!.has(token))) ? found : undefined;
    if (!repo) {
      // like the hub: without a token a missing (or hidden private) repo answers 401, with one 404
      return this.send(req, res, kind, auth ? 404 : 401, { error: 'Repository Not Found' }, { 'x-error-code': 'RepoNotFound' });
    }
    if (repo.access === 'gated' && route === 'resolve') {
      if (!token) return this.send(req, res, kind, 401, { error: `Access to ${repoKind} ${repoId} is restricted. You must be authenticated to access it.` }, { 'x-error-code': 'GatedRepo' });
      if (!repo.tokens?.has(token)) return this.send(req, res, kind, 403, { error: `Access to ${repoKind} ${repoId} is restricted and you are not in the authorized list.` }, { 'x-error-code': 'GatedRepo' });
    }

    const segments = rest.split('/');
    // the revision is one segment (URL-encoded if it holds '/'), or a raw refs/convert/parquet
    let revision = decodeURIComponent(segments[0]);
    let pathSegments = segments.slice(1);
    if (revision === 'refs' && segments.length >= 3) {
      revision = segments.slice(0, 3).join('/');
      pathSegments = segments.slice(3);
    }
    const sha = repo.refs.get(revision) ?? (repo.commits.has(revision) ? revision : undefined);
    if (!sha) return this.send(req, res, kind, 404, { error: `Invalid rev id: ${revision}` }, { 'x-error-code': 'RevisionNotFound' });
    const files = repo.commits.get(sha)!;
    const path = pathSegments.map(decodeURIComponent).join('/');

    if (route === 'revision') {
      return this.send(req, res, kind, 200, {
        _id: createHash('sha1').update(repoId).digest('hex').slice(0, 24),
        id: repoId,
        sha,
        private: repo.access === 'private',
        gated: repo.access === 'gated' ? 'manual' : false,
        downloads: 0,
        likes: 0,
        lastModified: new Date(0).toISOString(),
        siblings: [...files.keys()].map((rfilename) => ({ rfilename })),
      });
    }
    if (route === 'tree') return this.tree(req, res, url, decodeURIComponent(repoId), files, path);
    if (route === 'paths-info') {
      const body = await new Promise<string>((resolve) => {
        let text = '';
        req.on('data', (c: Buffer) => (text += c.toString()));
        req.on('end', () => resolve(text));
      });
      const paths = (JSON.parse(body || '{}') as { paths?: string[] }).paths ?? [];
      return this.send(req, res, kind, 200, paths.filter((p) => files.has(p)).map((p) => this.entry(decodeURIComponent(repoId), files.get(p)!)));
    }
    return this.resolve(req, res, decodeURIComponent(repoId), sha, files.get(path));
  }

  private tree(req: IncomingMessage, res: ServerResponse, url: URL, repo: string, files: Map<string, StoredFile>, base: string): void {
    const recursive = url.searchParams.get('recursive') === 'true' || url.searchParams.get('recursive') === '1';
    const prefix = base ? `${base}/` : '';
    const entries: Record<string, unknown>[] = [];
    const dirs = new Set<string>();
    for (const file of [...files.values()].sort((a, b) => a.path.localeCompare(b.path))) {
      if (!file.path.startsWith(prefix)) continue;
      const parts = file.path.slice(prefix.length).split('/');
      for (let i = 1; i < parts.length; i++) {
        const dir = prefix + parts.slice(0, i).join('/');
        if (!dirs.has(dir) && (recursive || i === 1)) {
          dirs.add(dir);
          entries.push({ type: 'directory', oid: gitOid(Buffer.from(dir)), size: 0, path: dir });
        }
      }
      if (recursive || parts.length === 1) entries.push(this.entry(repo, file));
    }
    const cursor = Number(url.searchParams.get('cursor') ?? 0);
    const page = entries.slice(cursor, cursor + this.pageSize);
    const headers: Record<string, string> = {};
    if (cursor + this.pageSize < entries.length) {
      const next = new URL(url);
      next.searchParams.set('cursor', String(cursor + this.pageSize));
      headers.link = `<${next.href}>; rel="next"`;
    }
    this.send(req, res, 'tree', 200, page, headers);
  }

  private resolve(req: IncomingMessage, res: ServerResponse, repo: string, sha: string, file: StoredFile | undefined): void {
    if (!file) return this.send(req, res, 'resolve', 404, { error: 'Entry not found' }, { 'x-error-code': 'EntryNotFound' });
    const total = file.content.length;
    const headers: Record<string, string> = {
      etag: `"${file.lfs ? file.lfs.oid : file.oid}"`,
      'x-repo-commit': sha,
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream',
    };
    if (file.lfs) {
      headers['x-linked-etag'] = `"${file.lfs.oid}"`;
      headers['x-linked-size'] = String(file.lfs.size);
    }
    let start = 0;
    let end = total - 1;
    let status = 200;
    const range = req.headers.range;
    if (range) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!m || Number(m[1]) >= total || (m[2] !== '' && Number(m[2]) < Number(m[1]))) {
        this.record(req, 'resolve', 416);
        res.writeHead(416, { 'content-range': `bytes */${total}` });
        res.end();
        return;
      }
      start = Number(m[1]);
      end = m[2] === '' ? total - 1 : Math.min(Number(m[2]), total - 1);
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${total}`;
    }
    headers['content-length'] = String(end - start + 1);
    this.record(req, 'resolve', status);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') return void res.end();
    const body = file.content.subarray(start, end + 1);
    const drop = this.drops.get(`${repo}/${file.path}`);
    if (drop && drop.times > 0) {
      drop.times--;
      const cut = Math.min(drop.afterBytes, body.length);
      res.write(body.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body);
  }
}
