// lorabuild doctor [-f lorafile.yaml] [--json]
// Can this machine train, and does it have what the lorafile needs? Finds Python (and says how),
// starts the worker and reports torch, CUDA, the GPU, BLAS and threads, then checks every input
// the lorafile names (dataset folders, checkpoints, tokenizers, publish folders). Each line is
// printed as soon as it is known: starting Python and importing torch takes seconds.
// Exit 0: ready; 1: not (with the way out); 2: usage or invalid lorafile.
import { existsSync } from 'node:fs';
import { parseCommandArgs, UsageError, lorafileOption } from './args.js';
import { findPython, onPythonProbe, pythonNotice, PythonNotFoundError, type PythonInfo, type PythonSource } from '../worker/python.js';
import { WorkerClient, type HelloResult } from '../worker/client.js';
import { expandUserPath, modelPathsOf } from '../worker/selection.js';
import { workerBlas, type BlasVerdict } from '../worker/blas.js';
import type { Config } from '../config/schema.js';
import type { Diagnostic } from '../config/diagnostic.js';
import { probeRemote, type RemoteProbe } from '../cache/remote/probe.js';
import { probeCluster, type ClusterProbe } from '../cluster/probe.js';
import { clusterSettings } from '../cluster/settings.js';

const HELP = `usage: lorabuild doctor [-f lorafile.yaml] [--json]

Checks the Python interpreter lorabuild would use (the lorafile's python:, LORABUILD_PYTHON, or a
python3 that imports torch), starts the worker and reports torch, CUDA, GPU, BLAS and threads.
With a lorafile (./lorafile.yaml or -f), also checks every input it names: dataset folders,
checkpoints, tokenizers and publish folders.
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
  /** the lorafile's missing inputs (absent without a lorafile) */
  inputs?: Diagnostic[];
}

async function loadOptionalConfig(file: string | undefined): Promise<Config | undefined> {
  const path = file ?? 'lorafile.yaml';
  if (!file && !existsSync(path)) return undefined;
  const { loadConfig } = await import('../config/load.js');
  return loadConfig(path);
}

/** `show` gets each part of the report as soon as it is known (the Python line, then the worker's). */
export async function diagnose(config: Config | undefined, show: (part: Partial<DoctorReport>) => void = () => {}): Promise<DoctorReport> {
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
  show({ python });
  pythonNotice(`lorabuild: starting the worker on ${python.path} (imports torch)…`);
  let worker: WorkerClient | undefined;
  try {
    worker = await WorkerClient.start({ python: python.path });
    const hello = await worker.hello();
    const blas = await workerBlas(worker.pid, hello.blas);
    show({ hello, blas });
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

function pythonLine(python: PythonInfo): string {
  return `python   ${python.path} (Python ${python.python}; found through ${SOURCES[python.source]})\n`;
}

function workerLines(hello: HelloResult, blas: BlasVerdict | undefined): string {
  const lines = [
    `torch    ${hello.torch} (numpy ${hello.numpy})`,
    `CUDA     ${hello.cuda ? 'available' : 'not available'}; training device: ${hello.device}`,
    ...(hello.gpu_name ? [`GPU      ${hello.gpu_name}${hello.gpu_memory ? `, ${gib(hello.gpu_memory)}` : ''}`] : []),
    `BLAS     ${blas ? `${blas.name} (${blas.evidence})` : hello.blas}`,
    `threads  ${hello.threads}`,
    `worker   lorabuild_worker ${hello.worker_version} (protocol ${hello.protocol})`,
  ];
  return `${lines.join('\n')}\n`;
}

/** What follows the lines printed while diagnosing: warnings, the error, the lorafile's inputs, the verdict. */
function conclusion(report: DoctorReport, config: Config | undefined, formatInputs: (d: Diagnostic[]) => string): string {
  const lines: string[] = [];
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
  if (report.inputs) {
    if (report.inputs.length === 0) lines.push(`inputs   ${config ? `everything ${displayName(config)} names is there` : ''}`);
    else lines.push(`inputs   ${report.inputs.length} missing:`, formatInputs(report.inputs).trimEnd());
  }
  const ready = report.usable && !report.inputs?.length;
  lines.push(
    ready
      ? `ok: this machine can train and render${config ? ` ${displayName(config)}` : ''}`
      : report.usable
        ? 'not ready: fix the inputs above, then run lorabuild doctor again'
        : 'not usable: fix the error above, then run lorabuild doctor again',
  );
  return `${lines.join('\n')}\n`;
}

function displayName(config: Config): string {
  return config.file.split(/[\\/]/).pop() ?? 'the lorafile';
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
  const show = values.json ? () => {} : (part: Partial<DoctorReport>) => {
    if (part.python) process.stdout.write(pythonLine(part.python));
    if (part.hello) process.stdout.write(workerLines(part.hello, part.blas));
  };
  if (!values.json) {
    process.stdout.write(`lorabuild doctor: looking for Python with PyTorch${config ? ` for ${displayName(config)}` : ''}…\n`);
    onPythonProbe((message) => process.stderr.write(`${message}\n`));
  }
  const report = await diagnose(config, show);
  if (config) report.inputs = await lorafileInputs(config);
  try {
    report.remote = await probeRemote();
    const cluster = config ? await clusterSettings(config) : null;
    report.cluster = cluster ? await probeCluster(cluster) : null;
    if (report.cluster && !report.cluster.reachable) report.warnings.push(`the lorafile runs train and render on Slurm, but ${report.cluster.slurm}`);
  } catch (err) {
    const { reportConfigError } = await import('../config/format.js');
    return reportConfigError(err);
  }
  if (report.remote && !report.remote.reachable) report.warnings.push(`the remote cache ${report.remote.url} does not answer (${report.remote.detail}): runs will build locally`);
  const ready = report.usable && !report.inputs?.length;
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    const { formatDiagnostics } = await import('../config/format.js');
    (ready ? process.stdout : process.stderr).write(conclusion(report, config, (d) => formatDiagnostics(d, config?.source)));
  }
  return ready ? 0 : 1;
}

/** The lorafile's missing inputs over its whole plan (Python was checked above). */
async function lorafileInputs(config: Config): Promise<Diagnostic[]> {
  const [{ preflight }, { planStages }, { cacheDirFor }] = await Promise.all([import('../engine/preflight.js'), import('../graph/plan.js'), import('../engine/project.js')]);
  return (await preflight(config, planStages(config), { cacheDir: cacheDirFor(config.root), python: false })).diagnostics;
}
