// Starts the repo's service scripts (scripts/services/*.sh) for a test and stops them afterwards.
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { REPO_ROOT } from './cli.js';

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export interface RemoteCacheServer {
  url: string;
  /** where nginx keeps the entries: data/ac/<key>, data/cas/<sha256> */
  dataDir: string;
  stop(): void;
}

const SCRIPT = join(REPO_ROOT, 'scripts', 'services', 'remote-cache.sh');

/** nginx with WebDAV PUT on 127.0.0.1 (scripts/services/remote-cache.sh), state under `dir`. */
export async function startRemoteCache(dir: string): Promise<RemoteCacheServer> {
  const port = await freePort();
  const url = execFileSync('bash', [SCRIPT, 'start', dir, String(port)], { encoding: 'utf8' }).trim();
  return { url, dataDir: join(dir, 'data'), stop: () => execFileSync('bash', [SCRIPT, 'stop', dir]) };
}

export interface SlurmCluster {
  /** SLURM_CONF for the clients (sbatch, squeue, scancel) */
  conf: string;
  env: Record<string, string>;
  stop(): void;
}

const SLURM_SCRIPT = join(REPO_ROOT, 'scripts', 'services', 'slurm.sh');

/** munged + slurmctld + slurmd on 127.0.0.1 (scripts/services/slurm.sh), state under `dir`. */
export function startSlurm(dir: string): SlurmCluster {
  const conf = execFileSync('bash', [SLURM_SCRIPT, 'start', dir], { encoding: 'utf8' }).trim();
  return { conf, env: { SLURM_CONF: conf }, stop: () => execFileSync('bash', [SLURM_SCRIPT, 'stop', dir]) };
}
