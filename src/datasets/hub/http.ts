// The one door to the network: adds the token (only for the hub's own origin), refuses to run while
// HF_HUB_OFFLINE=1, and turns failed responses into HubErrors that say what to do.
import { setTimeout as sleep } from 'node:timers/promises';
import type { HubEnv } from './env.js';
import { HubError } from './errors.js';

export interface HubTarget {
  repo: string;
  revision?: string;
  /** path inside the repo, for file requests */
  path?: string;
}

export type Fetch = typeof fetch;

function messageOf(body: string): string {
  try {
    const json = JSON.parse(body) as { error?: unknown; message?: unknown };
    const text = json.error ?? json.message;
    return typeof text === 'string' ? text : body;
  } catch {
    return body;
  }
}

export async function errorFromResponse(res: Response, env: HubEnv, target: HubTarget): Promise<HubError> {
  const code = res.headers.get('x-error-code') ?? '';
  const detail = messageOf((await res.text().catch(() => '')).slice(0, 500)).trim();
  const page = `${env.endpoint}/datasets/${target.repo}`;
  const login = 'set HF_TOKEN to a read token (or run `huggingface-cli login`)';
  if (code === 'GatedRepo') {
    return new HubError('gated', `dataset ${target.repo} is gated (${res.status}): its files need an accepted access request`, {
      hint: env.token ? `accept the conditions at ${page} with the account that owns HF_TOKEN` : `accept the conditions at ${page}, then ${login}`,
    });
  }
  if (code === 'RevisionNotFound') {
    return new HubError('revision-not-found', `revision '${target.revision ?? 'main'}' not found in dataset ${target.repo}`, {
      hint: `set revision: to a branch, tag or commit sha of ${page} (e.g. main)`,
    });
  }
  if (code === 'EntryNotFound') {
    return new HubError('http', `file '${target.path ?? ''}' not found in dataset ${target.repo} at ${target.revision ?? 'main'}`, {
      hint: 'the repo changed under this revision; run again with --update to re-resolve it',
    });
  }
  if (code === 'RepoNotFound' || code === 'RepositoryNotFound' || res.status === 404) {
    return new HubError('repo-not-found', `dataset repo ${target.repo} not found on ${env.endpoint} (${res.status})`, {
      hint: env.token
        ? 'check the owner/name spelling; if the dataset is private, check that HF_TOKEN can read it'
        : `check the owner/name spelling; if the dataset is private, ${login}`,
    });
  }
  if (res.status === 401) {
    return env.token
      ? new HubError('forbidden', `the hub rejected HF_TOKEN for dataset ${target.repo} (401)${detail ? `: ${detail}` : ''}`, {
          hint: `create a new read token at ${env.endpoint}/settings/tokens and set HF_TOKEN to it`,
        })
      : new HubError('auth-required', `dataset ${target.repo} needs authentication (401)${detail ? `: ${detail}` : ''}`, { hint: login });
  }
  if (res.status === 403) {
    return new HubError('forbidden', `access to dataset ${target.repo} was denied (403)${detail ? `: ${detail}` : ''}`, {
      hint: `if the dataset is gated, accept its conditions at ${page}; check that HF_TOKEN has read access`,
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

/**
 * A fetch for one repo: authenticated on the hub's origin, failing with a HubError on any non-2xx
 * response, and on network failures. Partial-content (206) is a success.
 */
export function hubFetch(env: HubEnv, target: HubTarget, signal?: AbortSignal): Fetch {
  const origin = new URL(env.endpoint).origin;
  return async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (env.offline) {
      throw new HubError('offline-not-cached', `HF_HUB_OFFLINE=1 but lorabuild needed ${url}`, {
        hint: 'unset HF_HUB_OFFLINE to let lorabuild reach the hub',
      });
    }
    const headers = new Headers(init?.headers);
    if (env.token && new URL(url).origin === origin) headers.set('authorization', `Bearer ${env.token}`);
    headers.set('user-agent', 'lorabuild/0.1');
    const abort = init?.signal ?? signal;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(url, { ...init, headers, signal: abort });
      } catch (err) {
        if ((err as Error).name === 'AbortError') throw err;
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        throw new HubError('network', `cannot reach ${env.endpoint} for dataset ${target.repo}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, {
          hint: 'check the network and HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to build from the cache',
          cause: err,
        });
      }
      if (RETRIED_STATUS.has(res.status) && attempt < RETRIES) {
        await res.body?.cancel();
        await sleep(retryDelayMs(res, attempt), undefined, abort ? { signal: abort } : undefined);
        continue;
      }
      if (!res.ok) throw await errorFromResponse(res, env, target);
      return res;
    }
  };
}

/** Rate limiting and passing gateway trouble: worth a few patient retries, as the Python client does. */
const RETRIED_STATUS = new Set([429, 500, 502, 503, 504]);
const RETRIES = 3;

function retryDelayMs(res: Response, attempt: number): number {
  const after = Number(res.headers.get('retry-after'));
  if (Number.isFinite(after) && after >= 0) return Math.min(after, 30) * 1000;
  return 500 * 2 ** attempt;
}
