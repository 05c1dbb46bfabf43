// Where compute stages run: the lorafile's `cluster:` section, overridden by run's flags
// (--executor, --partition, --gres, --time, --account, --sbatch-arg). `--executor local` runs a
// lorafile that names a cluster on this machine (CI, a laptop).
import type { ClusterSpec, Config } from '../config/schema.js';
import { ConfigError } from '../config/errors.js';
import type { Json } from '../engine/types.js';

export interface ClusterFlags {
  executor?: string;
  partition?: string;
  gres?: string;
  time?: string;
  account?: string;
  'sbatch-arg'?: string[];
}

export const clusterOptions = {
  executor: { type: 'string' },
  partition: { type: 'string' },
  gres: { type: 'string' },
  time: { type: 'string' },
  account: { type: 'string' },
  'sbatch-arg': { type: 'string', multiple: true },
} as const;

export const CLUSTER_HELP = `  --executor local|slurm  where train and render run (default: the lorafile's cluster.executor, else local)
  --partition P, --gres G, --time T, --account A, --sbatch-arg ARG (repeatable)
                      Slurm job settings; they override the lorafile's cluster: section
`;

/** The cluster a run uses, or null for local execution; bad flags are a ConfigError. */
export async function clusterSettings(config: Config, flags: ClusterFlags = {}): Promise<ClusterSpec | null> {
  const fromFlags: Record<string, unknown> = {};
  if (flags.executor !== undefined) fromFlags.executor = flags.executor;
  for (const key of ['partition', 'gres', 'time', 'account'] as const) if (flags[key] !== undefined) fromFlags[key] = flags[key];
  if (flags['sbatch-arg']?.length) fromFlags.sbatch_args = flags['sbatch-arg'];
  // local execution with no cluster settings anywhere: nothing to check (and zod stays unloaded)
  if (Object.keys(fromFlags).length === 0 && config.cluster === undefined) return null;
  const { ClusterSchema } = await import('../config/schema.js');
  const parsed = ClusterSchema.safeParse({ ...(config.cluster ?? {}), ...fromFlags });
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => ({
        severity: 'error' as const,
        code: 'cluster',
        message: `--${String(issue.path[0] ?? 'executor').replace('_', '-')}: ${issue.message}`,
        hint: 'see `lorabuild run --help`',
      })),
    );
  }
  return parsed.data.executor === 'slurm' ? parsed.data : null;
}

export function clusterJson(spec: ClusterSpec): Json {
  return JSON.parse(JSON.stringify(spec)) as Json;
}
