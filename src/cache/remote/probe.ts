// `lorabuild doctor`: which remote cache a run would use, with which credentials, and whether it
// answers (a HEAD of an action key nobody writes: 404 or 200 = reachable).
import { head } from './http.js';
import { remoteCredentials, remoteSettings, type RemoteSettings } from './settings.js';

export interface RemoteProbe {
  url: string;
  readOnly: boolean;
  source: RemoteSettings['source'];
  userConfig?: string;
  credentials: string;
  reachable: boolean;
  /** 'answers (HTTP 404 for a missing key)', 'ECONNREFUSED', 'HTTP 401: credentials rejected' */
  detail: string;
}

const PROBE_KEY = '0'.repeat(64);

export async function probeRemote(env: NodeJS.ProcessEnv = process.env, timeoutMs = 5_000): Promise<RemoteProbe | null> {
  const settings = remoteSettings({}, env);
  if (!settings) return null;
  const credentials = remoteCredentials(settings.url, env);
  const base = { url: settings.url, readOnly: settings.readOnly, source: settings.source, ...(settings.userConfig ? { userConfig: settings.userConfig } : {}), credentials: credentials.describe };
  try {
    const res = await head(`${settings.url}/ac/${PROBE_KEY}`, { headers: credentials.header ? { authorization: credentials.header } : {}, idleMs: timeoutMs, signal: AbortSignal.timeout(timeoutMs) });
    if (res.status === 404 || res.status === 200) return { ...base, reachable: true, detail: `answers (HTTP ${res.status} for a key nobody wrote)` };
    const why = res.status === 401 || res.status === 403 ? ': credentials rejected' : '';
    return { ...base, reachable: false, detail: `HTTP ${res.status}${why}` };
  } catch (err) {
    return { ...base, reachable: false, detail: (err as Error).message };
  }
}
