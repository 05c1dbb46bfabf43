// Credentials for the remote cache from a netrc file (curl's and Bazel's format): the `machine`
// entry of the cache's host, else `default`. Tokens are whitespace separated; `macdef` bodies
// (which end at a blank line) are skipped. Nothing from the file is ever printed.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface NetrcLogin {
  login: string;
  password: string;
}

export function netrcPath(env: NodeJS.ProcessEnv): string {
  return env.NETRC || join(env.HOME || homedir(), '.netrc');
}

/** The login for `host` in netrc text, or undefined. */
export function parseNetrc(text: string, host: string): NetrcLogin | undefined {
  const tokens = tokenize(text);
  let current: { machine: string | null; login?: string; password?: string } | null = null;
  let fallback: NetrcLogin | undefined;
  const close = (): NetrcLogin | undefined => {
    if (!current || current.password === undefined) return undefined;
    const login = { login: current.login ?? '', password: current.password };
    if (current.machine === null) fallback ??= login;
    return current.machine?.toLowerCase() === host.toLowerCase() ? login : undefined;
  };
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token === 'machine' || token === 'default') {
      const found = close();
      if (found) return found;
      current = { machine: token === 'machine' ? (tokens[++i] ?? '') : null };
    } else if (current && (token === 'login' || token === 'password' || token === 'account')) {
      const value = tokens[++i];
      if (token === 'login') current.login = value;
      else if (token === 'password') current.password = value;
    }
  }
  return close() ?? fallback;
}

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const words = lines[i].replace(/#.*$/, '').split(/\s+/).filter(Boolean);
    const macdef = words.indexOf('macdef');
    if (macdef >= 0) {
      tokens.push(...words.slice(0, macdef));
      while (i + 1 < lines.length && lines[i + 1].trim() !== '') i++;
      continue;
    }
    tokens.push(...words);
  }
  return tokens;
}

/** The netrc login for host, if the file exists and has one. */
export function netrcLogin(host: string, env: NodeJS.ProcessEnv): NetrcLogin | undefined {
  let text: string;
  try {
    text = readFileSync(netrcPath(env), 'utf8');
  } catch {
    return undefined;
  }
  return parseNetrc(text, host);
}
