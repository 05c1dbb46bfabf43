// Which remote cache a command uses, and how: `--remote-cache URL` beats LORABUILD_REMOTE_CACHE,
// which beats `cache.remote` in the user config (LORABUILD_CONFIG, else
// $XDG_CONFIG_HOME/lorabuild/config.yaml, else ~/.config/lorabuild/config.yaml). Read-only comes
// from `--remote-read-only`, LORABUILD_REMOTE_READ_ONLY=1 or `cache.read_only: true`.
// Credentials never come from here: a URL with user:password in it is refused (URLs are shown in
// logs); they come from LORABUILD_REMOTE_TOKEN (bearer) or a netrc file (see credentials).
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { z } from 'zod';
import type { Diagnostic } from '../../config/diagnostic.js';
import { ConfigError } from '../../config/errors.js';
import type { PathSegment } from '../../config/locate.js';
import { YamlLocator } from '../../config/locate.js';
import { yamlModule } from '../../config/yaml-module.js';
import { zodModule } from '../../config/lazy.js';
import { netrcLogin, netrcPath } from './netrc.js';

export type RemoteSource = '--remote-cache' | 'LORABUILD_REMOTE_CACHE' | 'user config';

export interface RemoteSettings {
  /** base URL, no trailing slash, no credentials: `${url}/ac/<key>`, `${url}/cas/<sha256>` */
  url: string;
  readOnly: boolean;
  source: RemoteSource;
  /** the user config file, when it named the cache or set read_only */
  userConfig?: string;
}

export interface RemoteFlags {
  url?: string;
  readOnly?: boolean;
}

// built on first use: most runs have no user config, and zod is slow to load
const userConfigSchema = () => {
  const { z } = zodModule();
  return z.strictObject({
    cache: z
      .strictObject({
        remote: z.string().min(1).optional().describe('Bazel-protocol HTTP cache URL (…/ac/, …/cas/)'),
        read_only: z.boolean().optional().describe('read from the remote cache, never upload'),
      })
      .optional(),
  });
};
type UserConfig = z.output<ReturnType<typeof userConfigSchema>>;

export function userConfigPath(env: NodeJS.ProcessEnv): string {
  if (env.LORABUILD_CONFIG) return env.LORABUILD_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'lorabuild', 'config.yaml');
}

/** The user config, or {} when the file does not exist; a broken one is a ConfigError with positions. */
export function readUserConfig(file: string): UserConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ConfigError([{ severity: 'error', code: 'user-config', file, message: `cannot read the user config: ${(err as Error).message}` }]);
  }
  const { LineCounter, parseDocument } = yamlModule();
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const locator = new YamlLocator(doc, lineCounter, text);
  const at = (path: readonly PathSegment[]) => {
    const span = locator.value(path);
    return { line: span.line, col: span.col, endCol: span.endCol };
  };
  const keyAt = (path: readonly PathSegment[]) => {
    const span = locator.key(path);
    return { line: span.line, col: span.col, endCol: span.endCol };
  };
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const span = locator.spanOfRange(e.pos[0], e.pos[1]);
    throw new ConfigError([{ severity: 'error', code: 'yaml', file, line: span.line, col: span.col, message: e.message.replace(/\s+at line \d+.*$/s, '') }], text);
  }
  const parsed = userConfigSchema().safeParse(doc.toJS() ?? {});
  if (parsed.success) return parsed.data;
  const diagnostics: Diagnostic[] = parsed.error.issues.map((issue) => ({
    severity: 'error',
    code: 'user-config',
    file,
    ...(issue.code === 'unrecognized_keys' ? keyAt([...(issue.path as PathSegment[]), issue.keys[0]]) : at(issue.path as PathSegment[])),
    message: `${issue.path.join('.') || '(top level)'}: ${issue.message}`,
    hint: 'the user config knows `cache: { remote: URL, read_only: true|false }`',
  }));
  throw new ConfigError(diagnostics, text);
}

/** Checks a remote cache URL; `where` names its origin in the error. */
export function checkRemoteUrl(raw: string, where: string, position?: Partial<Diagnostic>): string {
  const fail = (message: string, hint: string): never => {
    throw new ConfigError([{ severity: 'error', code: 'remote-cache', message: `${where}: ${message}`, hint, ...position }]);
  };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail(`'${raw}' is not a URL`, 'write it like http://cache.example.edu:8080/lorabuild');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(`only http:// and https:// remote caches are supported (got ${url.protocol})`, 'a Bazel HTTP remote cache URL, e.g. http://cache.example.edu:8080');
  if (url.username || url.password) fail('the URL carries credentials, which would end up in logs', `remove them from the URL; put them in ${'~/.netrc'} (machine ${url.hostname} login NAME password SECRET) or set LORABUILD_REMOTE_TOKEN`);
  if (url.search || url.hash) fail('the URL must not have a query or fragment', 'give the base URL; lorabuild appends /ac/<key> and /cas/<sha256>');
  return url.href.replace(/\/+$/, '');
}

/** The remote cache for this command, or null when none is configured. */
export function remoteSettings(flags: RemoteFlags, env: NodeJS.ProcessEnv = process.env): RemoteSettings | null {
  const file = userConfigPath(env);
  const user = readUserConfig(file);
  const envReadOnly = env.LORABUILD_REMOTE_READ_ONLY === '1' || env.LORABUILD_REMOTE_READ_ONLY === 'true';
  const readOnly = Boolean(flags.readOnly) || envReadOnly || user.cache?.read_only === true;
  const fromUser = user.cache?.remote !== undefined || user.cache?.read_only !== undefined;
  if (flags.url !== undefined) {
    if (flags.url === '') return null; // --remote-cache '' turns a configured cache off
    return { url: checkRemoteUrl(flags.url, '--remote-cache'), readOnly, source: '--remote-cache', ...(fromUser ? { userConfig: file } : {}) };
  }
  if (env.LORABUILD_REMOTE_CACHE !== undefined) {
    if (env.LORABUILD_REMOTE_CACHE === '') return null;
    return { url: checkRemoteUrl(env.LORABUILD_REMOTE_CACHE, 'LORABUILD_REMOTE_CACHE'), readOnly, source: 'LORABUILD_REMOTE_CACHE', ...(fromUser ? { userConfig: file } : {}) };
  }
  if (user.cache?.remote !== undefined) {
    const text = readFileSync(file, 'utf8');
    const { LineCounter, parseDocument } = yamlModule();
    const lineCounter = new LineCounter();
    const span = new YamlLocator(parseDocument(text, { lineCounter }), lineCounter, text).value(['cache', 'remote']);
    return { url: checkRemoteUrl(user.cache.remote, 'cache.remote', { file, line: span.line, col: span.col, endCol: span.endCol }), readOnly, source: 'user config', userConfig: file };
  }
  return null;
}

export interface RemoteCredentials {
  /** the Authorization header value (never printed) */
  header?: string;
  /** how the credentials were found, for doctor: 'LORABUILD_REMOTE_TOKEN', 'netrc (~/.netrc)', 'none' */
  describe: string;
}

export function remoteCredentials(url: string, env: NodeJS.ProcessEnv = process.env): RemoteCredentials {
  const token = env.LORABUILD_REMOTE_TOKEN;
  if (token) return { header: `Bearer ${token}`, describe: 'bearer token from LORABUILD_REMOTE_TOKEN' };
  const login = netrcLogin(new URL(url).hostname, env);
  if (login) return { header: `Basic ${Buffer.from(`${login.login}:${login.password}`).toString('base64')}`, describe: `login from ${netrcPath(env)}` };
  return { describe: 'none (anonymous)' };
}
