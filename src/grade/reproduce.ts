// `lorabuild grade --reproduce`: trains every LoRA again on this machine, into a temporary cache and
// a temporary out/ (the submission is never touched), and compares the tensors with the submitted
// file. Training is deterministic on CPU, so a CPU-built submission re-trained on CPU must be
// bit-exact; anything involving a GPU is compared with a tolerance.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { execute } from '../engine/executor.js';
import { readLockfile } from '../engine/lockfile.js';
import { planStages } from '../graph/plan.js';
import type { Json, Lockfile } from '../engine/types.js';
import { readSafetensorsHeader, readTensorBytes, toFloat32 } from '../safetensors/io.js';
import { stageRegistry } from '../stages/index.js';

/** Largest |a - b| allowed, relative to the largest |b| of the tensor, when a GPU was involved. */
export const GPU_TOLERANCE = 0.05;

export interface TensorComparison {
  identical: boolean;
  /** largest |retrained - submitted| over all tensors, relative to the tensor's largest magnitude */
  maxRelativeDiff: number;
  /** tensors only one file has, or with different shapes */
  structural: string[];
}

export async function compareLoraTensors(retrained: string, submitted: string): Promise<TensorComparison> {
  const a = await readSafetensorsHeader(retrained);
  const b = await readSafetensorsHeader(submitted);
  const structural: string[] = [];
  let identical = true;
  let maxRelativeDiff = 0;
  for (const name of new Set([...a.tensors.keys(), ...b.tensors.keys()])) {
    const ta = a.tensors.get(name);
    const tb = b.tensors.get(name);
    if (!ta || !tb || ta.dtype !== tb.dtype || ta.shape.join('x') !== tb.shape.join('x')) {
      structural.push(!ta ? `${name} only in the submission` : !tb ? `${name} missing from the submission` : `${name}: ${ta.dtype}[${ta.shape}] vs ${tb.dtype}[${tb.shape}]`);
      identical = false;
      continue;
    }
    const bytesA = await readTensorBytes(retrained, ta);
    const bytesB = await readTensorBytes(submitted, tb);
    if (bytesA.equals(bytesB)) continue;
    identical = false;
    const va = toFloat32(ta.dtype, bytesA);
    const vb = toFloat32(tb.dtype, bytesB);
    let scale = 0;
    let diff = 0;
    for (let i = 0; i < vb.length; i++) {
      scale = Math.max(scale, Math.abs(vb[i]));
      diff = Math.max(diff, Math.abs(va[i] - vb[i]));
    }
    maxRelativeDiff = Math.max(maxRelativeDiff, scale > 0 ? diff / scale : diff);
  }
  return { identical: identical && structural.length === 0, maxRelativeDiff, structural };
}

export interface ReproduceFacts {
  [lora: string]: Json;
}

/** Re-trains each LoRA of the lorafile in a throw-away cache and compares it with out/loras/NAME/NAME.safetensors. */
export async function reproduceLoras(config: Config, lock: Lockfile, log: (line: string) => void): Promise<ReproduceFacts> {
  const facts: ReproduceFacts = {};
  const scratch = mkdtempSync(join(tmpdir(), 'lorabuild-reproduce-'));
  try {
    const scratchConfig: Config = { ...config, out: join(scratch, 'out') };
    const names = Object.keys(config.loras);
    const plan = planStages(config, names.map((n) => `train:${n}`));
    // the scratch lock starts empty and the scratch cache too, so every stage runs
    const result = await execute({
      config: scratchConfig,
      plan,
      registry: stageRegistry,
      cacheDir: join(scratch, 'cache'),
      lockFile: join(scratch, 'lorafile.lock'),
      mode: 'run',
      onEvent: (e) => {
        if (!e.item && (e.outcome === 'ran' || e.outcome === 'failed')) log(`reproduce: ${e.stage} ${e.outcome}${e.reason ? ` (${e.reason})` : ''}`);
      },
    });
    const scratchLock = (await readLockfile(join(scratch, 'lorafile.lock'), join(scratch, 'cache'))).lock;
    for (const name of names) {
      const report = result.reports.get(`train:${name}`);
      const submitted = resolve(config.root, config.out, 'loras', name, `${name}.safetensors`);
      const retrained = join(scratch, 'out', 'loras', name, `${name}.safetensors`);
      const submittedDevice = lock.stages[`train:${name}`]?.params?.device ?? null;
      if (!report || report.outcome === 'failed' || !existsSync(retrained)) {
        facts[name] = { ran: false, error: report?.reason ?? 'not trained', identical: false, within_tolerance: false };
        continue;
      }
      if (!existsSync(submitted)) {
        facts[name] = { ran: true, error: `${config.out}/loras/${name}/${name}.safetensors is missing`, identical: false, within_tolerance: false };
        continue;
      }
      const retrainedDevice = scratchLock.stages[`train:${name}`]?.params?.device ?? null;
      const cmp = await compareLoraTensors(retrained, submitted);
      const bothCpu = submittedDevice === 'cpu' && retrainedDevice === 'cpu';
      const tolerance = bothCpu ? 0 : GPU_TOLERANCE;
      facts[name] = {
        ran: true,
        submitted_device: submittedDevice,
        device: retrainedDevice,
        identical: cmp.identical,
        max_relative_diff: cmp.maxRelativeDiff,
        tolerance,
        within_tolerance: cmp.structural.length === 0 && (cmp.identical || cmp.maxRelativeDiff <= tolerance),
        structural: cmp.structural.slice(0, 10),
      };
    }
    return facts;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
