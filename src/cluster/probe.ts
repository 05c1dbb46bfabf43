// `lorabuild doctor`: the cluster a run would use (the lorafile's cluster: section) and what Slurm
// says about its partition (sinfo), without submitting anything.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ClusterSpec } from '../config/schema.js';

const run = promisify(execFile);

export interface ClusterProbe {
  executor: 'slurm';
  partition: string | null;
  gres: string | null;
  time: string | null;
  account: string | null;
  sbatchArgs: string[];
  /** sinfo's view of the partition: 'debug up 1 node(s) idle', or why it could not be asked */
  slurm: string;
  reachable: boolean;
}

export async function probeCluster(cluster: ClusterSpec, env: NodeJS.ProcessEnv = process.env): Promise<ClusterProbe> {
  const base = { executor: 'slurm' as const, partition: cluster.partition ?? null, gres: cluster.gres ?? null, time: cluster.time ?? null, account: cluster.account ?? null, sbatchArgs: cluster.sbatch_args };
  try {
    const args = ['-h', '-o', '%P %a %D %T %G', ...(cluster.partition ? ['-p', cluster.partition] : [])];
    const out = await run('sinfo', args, { env, timeout: 10_000 });
    const lines = out.stdout.trim().split('\n').filter(Boolean);
    if (lines.length === 0) return { ...base, slurm: `no partition ${cluster.partition ?? ''} known to sinfo`.trim(), reachable: false };
    const shown = lines.map((l) => {
      const [partition, avail, nodes, state, gres] = l.split(/\s+/);
      const name = partition.endsWith('*') ? `${partition.slice(0, -1)} (default)` : partition;
      return `${name} ${avail}, ${nodes} node(s) ${state}${gres && gres !== '(null)' ? `, gres ${gres}` : ''}`;
    });
    return { ...base, slurm: shown.join('; '), reachable: true };
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    return { ...base, slurm: e.code === 'ENOENT' ? 'sinfo is not installed here (not a Slurm login node?)' : (e.stderr?.trim() || e.message), reachable: false };
  }
}
