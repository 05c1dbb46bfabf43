// Every LoRA format people download (kohya with and without alpha, LoCon with 3x3 and Tucker convs,
// LoHa plain and CP, LoKr, DoRA, diffusers/PEFT names, text-encoder keys in A1111's spellings) goes
// through lorabuild's key analysis (TypeScript) and the worker's weight patching (Python) on the tiny
// model; the patched weights must equal the closed form W + s * scale * dW of that format, worked out
// here in float64 from the fixture's values. Stacks apply in order (a DoRA after a LoRA sees the
// LoRA's weight) and restore() gives back every weight bit for bit.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { analyzeLoraFile } from '../src/loras/analyze.js';
import { fitProblems } from '../src/loras/fit.js';
import { workerLoraFile } from '../src/loras/worker-plan.js';
import type { Json } from '../src/engine/types.js';
import { readSafetensorsHeader, readTensorBytes, toFloat32 } from '../src/safetensors/io.js';
import { fixtures, TINY, writeFixture, type Expectation } from './helpers/lora-fixtures.js';
import { makeTempDir, REPO_ROOT } from './helpers/cli.js';

const PYTHON = process.env.LORABUILD_TEST_PYTHON ?? '/usr/bin/python3';

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-formats-');
});
afterAll(() => tmp.cleanup());

interface Case {
  name: string;
  stack: [string, number, number][];
  targets: string[];
  /** target -> expected weight from the weight before */
  expected: Record<string, (before: Float32Array) => Float64Array>;
}

async function probe(loraFiles: Record<string, Json>, cases: Case[]) {
  const request = join(tmp.dir, 'probe.json');
  const out = join(tmp.dir, 'probe.safetensors');
  writeFileSync(request, JSON.stringify({ model: join(tmp.dir, 'tiny.safetensors'), lora_files: loraFiles, cases: cases.map(({ name, stack, targets }) => ({ name, stack, targets })) }));
  const run = spawnSync(PYTHON, [join(REPO_ROOT, 'tests', 'worker_py', 'patch_probe.py'), request, out], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' }, timeout: 300_000 });
  expect(run.status, run.stderr.slice(-3000)).toBe(0);
  const header = await readSafetensorsHeader(out);
  const read = async (name: string) => toFloat32('F32', await readTensorBytes(out, header.tensors.get(name)!));
  return { header, read };
}

function expectClose(got: Float32Array, want: Float64Array, what: string): void {
  expect(got.length, what).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (1 + Math.abs(want[i])));
  expect(worst, `${what}: largest relative difference`).toBeLessThan(2e-6);
}

describe('LoRA formats: analysis + patching = closed form', () => {
  it('binds each format to the modules it targets and patches them to W + s * scale * dW', async () => {
    const all = fixtures();
    const loraFiles: Record<string, Json> = {};
    const cases: Case[] = [];
    const byName = new Map(all.map((f) => [f.name, f]));
    for (const fixture of all) {
      const file = join(tmp.dir, `${fixture.name}.safetensors`);
      await writeFixture(file, fixture);
      const analysis = (await analyzeLoraFile(file, 'tiny'))!;
      expect(analysis, fixture.name).not.toBeNull();
      expect(fitProblems(analysis, fixture.name, { name: 'tiny', arch: 'tiny' }, false), fixture.name).toEqual([]);
      expect(analysis.family.family, fixture.name).toBe('sd1');
      expect(analysis.binding.modules.map((m) => m.module.kohya).sort(), fixture.name).toEqual(fixture.expect.map((e) => e.target).sort());
      loraFiles[fixture.name] = workerLoraFile(file, analysis);
      const expected = (s: number) => Object.fromEntries(fixture.expect.map((e: Expectation) => [e.target, (w: Float32Array) => e.patched(w, s)]));
      cases.push({ name: fixture.name, stack: [[fixture.name, 0.7, 0.7]], targets: fixture.expect.map((e) => e.target), expected: expected(0.7) });
    }
    // negative strengths, and the UNet / text-encoder split of the two strengths
    const peft = byName.get('peft')!;
    cases.push({
      name: 'peft-split',
      stack: [['peft', -1.25, 0.5]],
      targets: [TINY.linear.kohya, TINY.text.kohya],
      expected: {
        [TINY.linear.kohya]: (w) => peft.expect.find((e) => e.target === TINY.linear.kohya)!.patched(w, -1.25),
        [TINY.text.kohya]: (w) => peft.expect.find((e) => e.target === TINY.text.kohya)!.patched(w, 0.5),
      },
    });
    // a stack: the DoRA renormalises the weight the first LoRA already patched
    const kohya = byName.get('kohya-alpha')!.expect.find((e) => e.target === TINY.linear.kohya)!;
    const dora = byName.get('dora')!.expect[0];
    cases.push({
      name: 'stack',
      stack: [['kohya-alpha', 0.5, 0.5], ['dora', 0.8, 0.8]],
      targets: [TINY.linear.kohya],
      expected: { [TINY.linear.kohya]: (w) => dora.patched(Float32Array.from(kohya.patched(w, 0.5)), 0.8) },
    });

    const { header, read } = await probe(loraFiles, cases);
    expect(header.metadata.restored).toBe('True');
    for (const c of cases) {
      for (const target of c.targets) {
        const before = await read(`${c.name}/${target}.before`);
        const after = await read(`${c.name}/${target}.after`);
        expectClose(after, c.expected[target](before), `${c.name} ${target}`);
      }
    }
  }, 300_000);
});
