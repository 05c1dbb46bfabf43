// lorabuild doctor [-f lorafile.yaml] [--json]
// Can this machine train? Finds Python (and says how), starts the worker, and reports torch, CUDA,
// the GPU, BLAS and threads. Exit 0: usable; 1: not usable (with the way out); 2: usage.
import { existsSync } from 'node:fs';
import { parseCommandArgs, UsageError, lorafileOption } from './args.js';
import { findPython, PythonNotFoundError, type PythonInfo, type PythonSource } from '../worker/python.js';
import { WorkerClient, type HelloResult } from '../worker/client.js';
import { expandUserPath, modelPathsOf } from '../worker/start.js';
import { workerBlas, type BlasVerdict } from '../worker/blas.js';
import type { Config } from '../config/schema.js';
import { probeRemote, type RemoteProbe } from '../cache/remote/probe.js';
import { probeCluster, type ClusterProbe } from '../cluster/probe.js';
import { clusterSettings } from '../cluster/settings.js';

const HELP = `usage: lorabuild doctor [-f lorafile.yaml] [--json]

Checks the Python interpreter lorabuild would use (the lorafile's python:, LORABUILD_PYTHON, or a
python3 that imports torch), then starts the worker and reports torch, CUDA, GPU, BLAS and threads.
`;

const SOURCES: Record<PythonSource, string> = {
  lorafile: '`python:` in the lorafile',
  LORABUILD_PYTHON: 'the LORABUILD_PYTHON variable',
  comfyui: "the python_embeded of the ComfyUI install next to the model",
  system: "Debian's /usr/bin/python3",
  PATH: 'the first python with torch on PATH',
};

export interface DoctorReport {
  usable: boolean;
  python?: PythonInfo;
  hello?: HelloResult;
  blas?: BlasVerdict;
  /** the remote cache a run would use (null: none configured) */
  remote?: RemoteProbe | null;
  /** the cluster train and render would run on (null: this machine) */
  cluster?: ClusterProbe | null;
  warnings: string[];
  error?: string;
}

async function loadOptionalConfig(file: string | undefined): Promise<Config | undefined> {
  const path = file ?? 'lorafile.yaml';
  if (!file && !existsSync(path)) return undefined;
  const { loadConfig } = await import('../config/load.js');
  return loadConfig(path);
}

export async function diagnose(config: Config | undefined): Promise<DoctorReport> {
  const warnings: string[] = [];
  let python: PythonInfo;
  try {
    python = await findPython({
      configured: config?.python ? expandUserPath(config.root, config.python) : undefined,
      modelPaths: config ? modelPathsOf(config) : [],
    });
  } catch (err) {
    if (err instanceof PythonNotFoundError) return { usable: false, warnings, error: err.message };
    throw err;
  }
  let worker: WorkerClient | undefined;
  try {
    worker = await WorkerClient.start({ python: python.path });
    const hello = await worker.hello();
    const blas = await workerBlas(worker.pid, hello.blas);
    if (blas.fast === false) {
      warnings.push(
        `torch uses the reference BLAS (${blas.evidence}): CPU matrix products run about 30x slower than with OpenBLAS or MKL.` +
          ' Debian: sudo apt-get install libopenblas0-pthread (then re-run lorabuild doctor); pip: install the official torch wheel, which bundles MKL/OpenBLAS.',
      );
    } else if (blas.fast === null) {
      warnings.push(`could not tell which BLAS torch uses (${blas.evidence}); if CPU training is slow, install OpenBLAS or MKL.`);
    }
    if (!hello.cuda) warnings.push('no CUDA GPU: training runs on the CPU (fine for builtin: tiny; an SD1.5 LoRA takes hours).');
    return { usable: true, python, hello, blas, warnings };
  } catch (err) {
    return { usable: false, python, warnings, error: `the worker did not start with ${python.path}: ${(err as Error).message}` };
  } finally {
    await worker?.close();
  }
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

function print(report: DoctorReport): string {
  const lines: string[] = [];
  const { python, hello } = report;
  if (python) lines.push(`python   ${python.path} (Python ${python.python}; found through ${SOURCES[python.source]})`);
  if (hello) {
    lines.push(`torch    ${hello.torch} (numpy ${hello.numpy})`);
    lines.push(`CUDA     ${hello.cuda ? 'available' : 'not available'}; training device: ${hello.device}`);
    if (hello.gpu_name) lines.push(`GPU      ${hello.gpu_name}${hello.gpu_memory ? `, ${gib(hello.gpu_memory)}` : ''}`);
    lines.push(`BLAS     ${report.blas ? `${report.blas.name} (${report.blas.evidence})` : hello.blas}`);
    lines.push(`threads  ${hello.threads}`);
    lines.push(`worker   lorabuild_worker ${hello.worker_version} (protocol ${hello.protocol})`);
  }
  if (report.remote) {
    const r = report.remote;
    lines.push(`remote   ${r.url} (${r.readOnly ? 'read-only' : 'read and write'}; from ${r.source === 'user config' ? r.userConfig : r.source}; credentials: ${r.credentials}): ${r.reachable ? r.detail : `NOT reachable: ${r.detail}`}`);
  } else if (report.remote === null) {
    lines.push('remote   none (--remote-cache URL, LORABUILD_REMOTE_CACHE or cache.remote in the user config)');
  }
  if (report.cluster) {
    const c = report.cluster;
    const job = [c.partition && `partition ${c.partition}`, c.gres && `gres ${c.gres}`, c.time && `time ${c.time}`, c.account && `account ${c.account}`, ...c.sbatchArgs].filter(Boolean).join(', ');
    lines.push(`cluster  slurm${job ? ` (${job})` : ''}: ${c.reachable ? c.slurm : `NOT usable: ${c.slurm}`}`);
  } else if (report.cluster === null) {
    lines.push('cluster  none: train and render run on this machine (cluster: executor: slurm in the lorafile, or --executor slurm)');
  }
  for (const w of report.warnings) lines.push(`WARNING  ${w}`);
  if (report.error) lines.push(`ERROR    ${report.error}`);
  lines.push(report.usable ? 'ok: this machine can train and render' : 'not usable: fix the error above, then run lorabuild doctor again');
  return `${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandArgs(argv, { ...lorafileOption, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, 'doctor');
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n\n${HELP}`);
      return 2;
    }
    throw err;
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  let config: Config | undefined;
  try {
    config = await loadOptionalConfig(values.file);
  } catch (err) {
    const { reportConfigError } = await import('../config/format.js');
    return reportConfigError(err);
  }
  const report = await diagnose(config);
  try {
    report.remote = await probeRemote();
    const cluster = config ? clusterSettings(config) : null;
    report.cluster = cluster ? await probeCluster(cluster) : null;
    if (report.cluster && !report.cluster.reachable) report.warnings.push(`the lorafile runs train and render on Slurm, but ${report.cluster.slurm}`);
  } catch (err) {
    const { reportConfigError } = await import('../config/format.js');
    return reportConfigError(err);
  }
  if (report.remote && !report.remote.reachable) report.warnings.push(`the remote cache ${report.remote.url} does not answer (${report.remote.detail}): runs will build locally`);
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else (report.usable ? process.stdout : process.stderr).write(print(report));
  return report.usable ? 0 : 1;
}
