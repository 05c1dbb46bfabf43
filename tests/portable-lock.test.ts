// Two machines, one checkout: the same project built in two different folders, with different home
// folders (publish: ~/ComfyUI/...) and caches, writes the same lorafile.lock byte for byte and the
// same logs in out/: nothing committed names a machine's paths.
import { describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { makeTempDir, runCli, writeFiles } from './helpers/cli.js';

const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1' };

const LORAFILE = `version: 1
models:
  tiny: { builtin: tiny, seed: 0 }
datasets:
  shapes: { folder: shapes, trigger: lineart, rules: { min_size: 64 } }
loras:
  shapes_lora:
    model: tiny
    dataset: shapes
    rank: 2
    learning_rate: 1.0e-3
    steps: 4
    checkpoint_every: 2
    resolution: 64
    publish: ~/ComfyUI/models/loras/shapes_lora.safetensors
renders:
  ab:
    lora: shapes_lora
    prompts: ["lineart, a circle"]
    seeds: [0]
    strengths: [0, 1]
    steps: 2
`;

function filesUnder(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .sort();
}

describe('committed files are path-free', () => {
  it('two folders, homes and caches give the same lorafile.lock and the same out/ logs', async () => {
    const { dir, cleanup } = makeTempDir('lorabuild-portable-');
    try {
      const source = join(dir, 'checkout');
      writeFiles(source, { 'lorafile.yaml': LORAFILE });
      for (let i = 0; i < 2; i++) {
        const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="white"/><circle cx="${20 + i * 20}" cy="32" r="10" fill="none" stroke="black" stroke-width="3"/></svg>`;
        writeFiles(source, { [`shapes/image/${i}.png`]: await sharp(Buffer.from(svg)).png().toBuffer(), [`shapes/text/${i}.txt`]: `lineart, circle ${i}` });
      }
      const machines = ['machine-a/work', 'machine-b/somewhere/deeper'].map((where) => {
        const project = join(dir, where, 'submission');
        const home = join(dir, where, 'home');
        cpSync(source, project, { recursive: true });
        mkdirSync(join(home, 'ComfyUI', 'models'), { recursive: true });
        return { project, home };
      });
      for (const { project, home } of machines) {
        const r = await runCli(['run'], { cwd: project, env: { ...ENV, HOME: home, LORABUILD_CACHE: join(home, 'lorabuild-cache') }, timeoutMs: 600_000 });
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toContain('published shapes_lora to ~/ComfyUI/models/loras/shapes_lora.safetensors');
        expect(readdirSync(join(home, 'ComfyUI', 'models', 'loras'))).toEqual(['shapes_lora.safetensors']);
      }
      const [a, b] = machines.map(({ project }) => project);
      const lockA = readFileSync(join(a, 'lorafile.lock'), 'utf8');
      expect(lockA).toBe(readFileSync(join(b, 'lorafile.lock'), 'utf8'));
      expect(lockA).not.toContain(dir);
      expect(filesUnder(join(a, 'out'))).toEqual(filesUnder(join(b, 'out')));
      for (const name of filesUnder(join(a, 'out')).filter((f) => /\.(txt|json|md|html)$/.test(f))) {
        const text = readFileSync(join(a, 'out', name), 'utf8');
        expect(text, name).not.toContain(dir);
        expect(text, name).toBe(readFileSync(join(b, 'out', name), 'utf8'));
      }
      expect(readFileSync(join(a, 'out/loras/shapes_lora/train-log.txt'), 'utf8')).toContain('checkpoint at step 2: shapes_lora-step00002.safetensors');
    } finally {
      cleanup();
    }
  }, 900_000);
});
