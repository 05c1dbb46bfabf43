// Hugging Face settings, read the way the Python client (huggingface_hub) reads them, so that
// lorabuild and Python tools share one cache and one login.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface HubEnv {
  /** hub base URL without a trailing slash (HF_ENDPOINT) */
  endpoint: string;
  /** HF_HOME */
  home: string;
  /** HF_HUB_CACHE: the folder holding datasets--owner--name/ */
  cacheDir: string;
  /** HF_HUB_OFFLINE=1: no network at all, the cache or a clear failure */
  offline: boolean;
  /** HF_TOKEN, else the token file written by `huggingface-cli login`; none with HF_HUB_DISABLE_IMPLICIT_TOKEN */
  token: string | undefined;
  /** HF_HUB_DISABLE_IMPLICIT_TOKEN=1: a token exists but is not sent (as the Python client does) */
  tokenDisabled: boolean;
  /** seconds to wait for a hub answer or for the next bytes of a download (HF_HUB_DOWNLOAD_TIMEOUT, default 10 as in Python) */
  timeoutS: number;
}

const TRUE_VALUES = new Set(['1', 'on', 'yes', 'true']);
const DEFAULT_TIMEOUT_S = 10;

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

function readTokenFile(path: string): string | undefined {
  try {
    const token = readFileSync(path, 'utf8').trim();
    return token || undefined;
  } catch {
    return undefined;
  }
}

export function hubEnv(env: NodeJS.ProcessEnv = process.env): HubEnv {
  const xdgCache = env.XDG_CACHE_HOME ? expandHome(env.XDG_CACHE_HOME) : join(homedir(), '.cache');
  const home = env.HF_HOME ? expandHome(env.HF_HOME) : join(xdgCache, 'huggingface');
  const cacheDir = expandHome(env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE ?? join(home, 'hub'));
  const endpoint = (env.HF_ENDPOINT?.trim() || 'https://huggingface.co').replace(/\/+$/, '');
  const offline = TRUE_VALUES.has((env.HF_HUB_OFFLINE ?? '').trim().toLowerCase());
  const tokenPath = env.HF_TOKEN_PATH ? expandHome(env.HF_TOKEN_PATH) : join(home, 'token');
  const found = env.HF_TOKEN?.trim() || env.HUGGING_FACE_HUB_TOKEN?.trim() || readTokenFile(tokenPath);
  const tokenDisabled = found !== undefined && TRUE_VALUES.has((env.HF_HUB_DISABLE_IMPLICIT_TOKEN ?? '').trim().toLowerCase());
  const timeout = Number(env.HF_HUB_DOWNLOAD_TIMEOUT);
  const timeoutS = Number.isFinite(timeout) && timeout > 0 ? timeout : DEFAULT_TIMEOUT_S;
  return { endpoint, home, cacheDir, offline, token: tokenDisabled ? undefined : found, tokenDisabled, timeoutS };
}
