// The one door to the network: adds the token (only for the hub's own origin), refuses to run while
// HF_HUB_OFFLINE=1, waits at most HF_HUB_DOWNLOAD_TIMEOUT seconds for an answer (saying so while it
// waits, retrying a silent or overloaded hub a few times), and turns failures into HubErrors that
// say what to do.
import { setTimeout as sleep } from 'node:timers/promises';
import type { HubEnv } from './env.js';
import { HubError } from './errors.js';
import { repoLabel, repoPage, type HubRepo } from './repo.js';

export interface HubTarget {
  repo: HubRepo;
  revision?: string;
  /** path inside the repo, for file requests */
  path?: string;
}

export type Fetch = (url: string, init?: { headers?: Record<string, string>; method?: string }) => Promise<Response>;

export interface HubFetchOptions {
  signal?: AbortSignal;
  /** called about once a second while a request waits for its answer */
  onWait?: (message: string) => void;
}

/** Rate limiting and passing gateway trouble: worth a few patient retries, as the Python client does. */
const RETRIED_STATUS = new Set([429, 500, 502, 503, 504]);
const RETRIES = 3;
/** how long a request may wait silently before the wait is shown */
const WAIT_NOTICE_MS = 2000;
/** connection problems where another attempt can help (not: refused, unknown host) */
const TRANSIENT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
const PLAIN_CAUSES: Record<string, string> = {
  ECONNREFUSED: 'the connection was refused',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be looked up',
  ECONNRESET: 'the connection was reset',
  ETIMEDOUT: 'the connection timed out',
  EHOSTUNREACH: 'the host is unreachable',
  ENETUNREACH: 'the network is unreachable',
  UND_ERR_SOCKET: 'the connection closed unexpectedly',
  UND_ERR_CLOSED: 'the connection closed unexpectedly',
  CERT_HAS_EXPIRED: 'its TLS certificate has expired',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its TLS certificate could not be verified',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'it uses a self-signed TLS certificate',
};

function messageOf(body: string): string {
  try {
    const json = JSON.parse(body) as { error?: unknown; message?: unknown };
    const text = json.error ?? json.message;
    return typeof text === 'string' ? text : body;
  } catch {
    return body;
  }
}

function isHtml(res: Response, body: string): boolean {
  return (res.headers.get('content-type') ?? '').includes('text/html') || /^\s*</.test(body);
}

function notAHub(env: HubEnv, status: number): HubError {
  return new HubError('bad-response', `${env.endpoint} answered with an HTML page (${status}), not the Hugging Face hub API`, {
    hint: `HF_ENDPOINT must be the base URL of a hub (https://huggingface.co or a mirror of it); it is ${env.endpoint}`,
  });
}

function tokenHint(env: HubEnv, login: string): string {
  return env.tokenDisabled ? 'HF_HUB_DISABLE_IMPLICIT_TOKEN is set, so lorabuild sends no token: unset it' : login;
}

export async function errorFromResponse(res: Response, env: HubEnv, target: HubTarget): Promise<HubError> {
  const code = res.headers.get('x-error-code') ?? '';
  const body = (await res.text().catch(() => '')).slice(0, 500);
  if (!code && isHtml(res, body)) return notAHub(env, res.status);
  const detail = messageOf(body).trim();
  const label = repoLabel(target.repo);
  const page = repoPage(env, target.repo);
  const login = tokenHint(env, 'set HF_TOKEN to a read token (or run `huggingface-cli login`)');
  if (code === 'GatedRepo') {
    return new HubError('gated', `${label} is gated (${res.status}): its files need an accepted access request`, {
      hint: env.token ? `accept the conditions at ${page} with the account that owns HF_TOKEN` : `accept the conditions at ${page}, then ${login}`,
    });
  }
  if (code === 'RevisionNotFound') {
    return new HubError('revision-not-found', `revision '${target.revision ?? 'main'}' not found in ${label}`, {
      hint: `set revision: to a branch, tag or commit sha of ${page} (e.g. main)`,
    });
  }
  if (code === 'EntryNotFound') {
    return new HubError('http', `file '${target.path ?? ''}' not found in ${label} at ${target.revision ?? 'main'}`, {
      hint: 'the repo changed under this revision; run again with --update to re-resolve it',
    });
  }
  if (code === 'RepoNotFound' || code === 'RepositoryNotFound' || res.status === 404) {
    return new HubError('repo-not-found', `${target.repo.kind} repo ${target.repo.id} not found on ${env.endpoint} (${res.status})`, {
      hint: env.token
        ? `check the owner/name spelling; if the ${target.repo.kind} is private, check that HF_TOKEN can read it`
        : `check the owner/name spelling; if the ${target.repo.kind} is private, ${login}`,
    });
  }
  if (res.status === 401) {
    return env.token
      ? new HubError('forbidden', `the hub rejected HF_TOKEN for ${label} (401)${detail ? `: ${detail}` : ''}`, {
          hint: `create a new read token at ${env.endpoint}/settings/tokens and set HF_TOKEN to it`,
        })
      : new HubError('auth-required', `${label} needs authentication (401)${detail ? `: ${detail}` : ''}`, { hint: login });
  }
  if (res.status === 403) {
    return new HubError('forbidden', `access to ${label} was denied (403)${detail ? `: ${detail}` : ''}`, {
      hint: `if the ${target.repo.kind} is gated, accept its conditions at ${page}; check that HF_TOKEN has read access`,
    });
  }
  return new HubError('http', `${res.status} ${res.statusText} from ${res.url}${detail ? `: ${detail}` : ''}`, {
    hint:
      res.status === 429
        ? `the hub is rate-limiting requests; wait a minute and run again${env.token ? '' : ' (requests with HF_TOKEN get a higher limit)'}`
        : res.status >= 500
          ? 'the hub had a problem; run again later'
          : undefined,
  });
}

/** The JSON body of a hub API answer, or a HubError that says what came instead. */
export async function hubJson(res: Response, env: HubEnv, what: string): Promise<unknown> {
  const text = await res.text();
  if (isHtml(res, text)) throw notAHub(env, res.status);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HubError('bad-response', `${env.endpoint} sent ${what} that is not JSON (${JSON.stringify(text.slice(0, 60))}…)`, {
      hint: 'HF_ENDPOINT may point at something that is not a Hugging Face hub, or a proxy cut the answer off; run again',
    });
  }
}

function causeCode(err: unknown): string | undefined {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === 'string' ? cause.code : undefined;
}

function networkError(env: HubEnv, target: HubTarget, err: unknown): HubError {
  const code = causeCode(err);
  const plain = code ? (PLAIN_CAUSES[code] ?? code) : ((err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message);
  return new HubError('network', `cannot reach ${env.endpoint} for ${repoLabel(target.repo)}: ${plain}`, {
    hint: 'check the network and HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to build from the cache',
    cause: err,
  });
}

class Timeout extends Error {}

/**
 * Waits for the response headers at most `env.timeoutS`, telling `onWait` about a long wait.
 * The body is the caller's to read (downloads watch it for stalls themselves).
 */
async function fetchOnce(env: HubEnv, url: string, init: RequestInit, signal: AbortSignal | undefined, onWait: HubFetchOptions['onWait'], attempt: number): Promise<Response> {
  const timer = new AbortController();
  const started = Date.now();
  const host = new URL(url).host;
  const limitMs = env.timeoutS * 1000;
  let timedOut = false;
  const deadline = setTimeout(() => {
    timedOut = true;
    timer.abort(new Timeout());
  }, limitMs);
  const notice = setInterval(() => {
    const waited = Date.now() - started;
    if (waited >= WAIT_NOTICE_MS) {
      onWait?.(`waiting for ${host} to answer (${Math.round(waited / 1000)} s of ${env.timeoutS} s${attempt > 0 ? `, attempt ${attempt + 1} of ${RETRIES + 1}` : ''})`);
    }
  }, 1000);
  try {
    return await fetch(url, { ...init, signal: signal ? AbortSignal.any([signal, timer.signal]) : timer.signal });
  } catch (err) {
    if (timedOut && !signal?.aborted) throw new Timeout();
    throw err;
  } finally {
    clearTimeout(deadline);
    clearInterval(notice);
  }
}

/**
 * A fetch for one repo: authenticated on the hub's origin, failing with a HubError on any non-2xx
 * response, on network failures and on a hub that does not answer. Partial-content (206) is a success.
 */
export function hubFetch(env: HubEnv, target: HubTarget, options: HubFetchOptions = {}): Fetch {
  const origin = new URL(env.endpoint).origin;
  const { signal, onWait } = options;
  return async (url, init) => {
    if (env.offline) {
      throw new HubError('offline-not-cached', `HF_HUB_OFFLINE=1 but lorabuild needed ${url}`, {
        hint: 'unset HF_HUB_OFFLINE to let lorabuild reach the hub',
      });
    }
    const headers = new Headers(init?.headers);
    if (env.token && new URL(url).origin === origin) headers.set('authorization', `Bearer ${env.token}`);
    headers.set('user-agent', 'lorabuild/0.1');
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetchOnce(env, url, { method: init?.method ?? 'GET', headers }, signal, onWait, attempt);
      } catch (err) {
        if (signal?.aborted) throw signal.reason ?? err;
        const transient = err instanceof Timeout || TRANSIENT_CODES.has(causeCode(err) ?? '');
        if (transient && attempt < RETRIES) {
          await sleep(500 * 2 ** attempt, undefined, signal ? { signal } : undefined);
          continue;
        }
        if (err instanceof Timeout) {
          throw new HubError('network', `${new URL(url).host} accepted the connection but did not answer within ${env.timeoutS} s (${attempt + 1} attempts) for ${repoLabel(target.repo)}`, {
            hint: 'the hub or a proxy in between is not answering; check HF_ENDPOINT and the network, allow more time with HF_HUB_DOWNLOAD_TIMEOUT=60, or set HF_HUB_OFFLINE=1 to build from the cache',
          });
        }
        throw networkError(env, target, err);
      }
      if (RETRIED_STATUS.has(res.status) && attempt < RETRIES) {
        await res.body?.cancel();
        await sleep(retryDelayMs(res, attempt), undefined, signal ? { signal } : undefined);
        continue;
      }
      if (!res.ok) throw await errorFromResponse(res, env, target);
      return res;
    }
  };
}

function retryDelayMs(res: Response, attempt: number): number {
  const after = Number(res.headers.get('retry-after'));
  if (Number.isFinite(after) && after >= 0) return Math.min(after, 30) * 1000;
  return 500 * 2 ** attempt;
}
