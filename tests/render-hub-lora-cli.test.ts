// A LoRA from a Hub model repo (`hub: owner/name` + `file:` in a render's loras list), end to end
// through the CLI against the loopback hub: downloaded into the HF cache, pinned to a commit in
// lorafile.lock, the same pixels as the same bytes used as a local file, no request once pinned
// (even when main moves), HF_HUB_OFFLINE=1 from the HF cache alone, `--update` moving the pin, a
// file the repo lacks named with the files it has, and an SDXL LoRA refused from its header before
// its download.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { makeTempDir, runCli, writeFiles, type CliResult } from './helpers/cli.js';
import { HubServer } from './helpers/hub-server.js';
import { fixtures, writeFixture, zeros } from './helpers/lora-fixtures.js';

const FILE = '80s_offset.safetensors';
const REPO = 'lab/eighties';

interface CellsJson {
  loras: Record<string, unknown>[];
  cells: { sha256: string; strength: number }[];
}

let hub: HubServer;
let tmp: { dir: string; cleanup: () => void };
beforeAll(async () => {
  hub = await HubServer.start();
  tmp = makeTempDir('lorabuild-hub-lora-');
});
afterAll(async () => {
  await hub.stop();
  tmp.cleanup();
});

const dir = () => join(tmp.dir, 'project');
const run = (args: string[] = [], env: Record<string, string> = {}): Promise<CliResult> =>
  runCli(['run', '--json', ...args], {
    cwd: dir(),
    env: {
      LORABUILD_PYTHON: '/usr/bin/python3',
      OMP_NUM_THREADS: '1',
      MKL_NUM_THREADS: '1',
      LORABUILD_THREADS: '1',
      HF_HOME: join(tmp.dir, 'hf'),
      HF_ENDPOINT: hub.url,
      HF_HUB_OFFLINE: undefined,
      HF_HUB_CACHE: undefined,
      HF_TOKEN: undefined,
      ...env,
    },
    timeoutMs: 400_000,
  });
const cells = (render: string) => JSON.parse(readFileSync(join(dir(), 'out', 'renders', render, 'cells.json'), 'utf8')) as CellsJson;
const withLora = (render: string) => cells(render).cells.find((c) => c.strength === 1)!.sha256;
const without = (render: string) => cells(render).cells.find((c) => c.strength === 0)!.sha256;
const pinned = () => (parseYaml(readFileSync(join(dir(), 'lorafile.lock'), 'utf8')) as { stages: Record<string, { params: Record<string, { commit: string }> }> }).stages['render:from_hub'].params['loras[0].pin'].commit;
const outcome = (result: CliResult, item: string) => result.events.filter((e) => e.stage === 'render:from_hub' && e.item === item).map((e) => e.outcome);

const render = (name: string, entry: string) => `  ${name}:
    model: tiny
    loras:
      - { ${entry}, strength_model: 0.8, strength_clip: 0.8 }
    prompts: ["retro80, a red circle"]
    seeds: [0]
    strengths: [0, 1]
    steps: 3
`;

describe('a render LoRA from the Hub', () => {
  let first: string;
  let bytes: Buffer;

  beforeAll(async () => {
    // kohya-no-alpha says its trigger phrase (retro80) in its metadata
    const fixture = fixtures().find((f) => f.name === 'kohya-no-alpha')!;
    await writeFixture(join(dir(), 'loras', FILE), fixture);
    bytes = readFileSync(join(dir(), 'loras', FILE));
    first = hub.addRepo(REPO, [{ path: FILE, content: bytes }, { path: 'README.md', content: Buffer.from('# 80s') }], { kind: 'model' });
    writeFiles(dir(), {
      'lorafile.yaml': ['version: 1', 'models:', '  tiny: { builtin: tiny, seed: 0 }', 'renders:', render('from_hub', `hub: ${REPO}, file: ${FILE}`), render('from_file', `file: loras/${FILE}`)].join('\n'),
    });
  });

  it('is downloaded into the HF cache, pinned in the lock, and renders the pixels of the same file used locally', async () => {
    hub.clearLog();
    const one = await run();
    expect(one.code, one.stderr.slice(-3000)).toBe(0);
    const snapshot = join(tmp.dir, 'hf', 'hub', 'models--lab--eighties', 'snapshots', first, FILE);
    expect(readFileSync(snapshot).equals(bytes)).toBe(true);
    // its header first (two Range reads: the family check), then one download
    const reads = hub.contentRequests().filter((r) => r.path.endsWith(FILE));
    expect(reads.filter((r) => r.range === undefined).length).toBe(1);
    expect(reads.filter((r) => r.range !== undefined).length).toBe(2);
    expect(pinned()).toBe(first);
    expect(withLora('from_hub')).toBe(withLora('from_file'));
    expect(withLora('from_hub')).not.toBe(without('from_hub'));
    expect(cells('from_hub').loras[0]).toMatchObject({ label: '80s_offset', hub: REPO, file: FILE, revision: 'main', commit: first, family: 'SD1.x', triggers: ['retro80'], strength_model: 0.8 });
    expect(readFileSync(join(dir(), 'out', 'report.md'), 'utf8')).toContain(`${REPO}/${FILE} @ ${first.slice(0, 10)}`);
  }, 400_000);

  it('makes no request once pinned, even when main moves', async () => {
    const other = fixtures().find((f) => f.name === 'kohya-alpha')!;
    await writeFixture(join(tmp.dir, 'v2.safetensors'), other);
    hub.commit(REPO, [{ path: FILE, content: readFileSync(join(tmp.dir, 'v2.safetensors')) }], 'main', 'model');
    hub.clearLog();
    const two = await run();
    expect(two.code, two.stderr.slice(-3000)).toBe(0);
    expect(hub.log).toEqual([]);
    expect(two.events.find((e) => e.stage === 'render:from_hub' && !e.item && e.outcome)?.outcome).toBe('fresh');
    expect(pinned()).toBe(first);
    // CI: `check` on a machine whose HF cache is empty and offline takes the pin from the lock
    const check = await runCli(['check'], { cwd: dir(), env: { HF_HOME: join(tmp.dir, 'empty-hf'), HF_ENDPOINT: hub.url, HF_HUB_OFFLINE: '1', LORABUILD_PYTHON: '/usr/bin/python3' }, timeoutMs: 400_000 });
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(hub.log).toEqual([]);
  }, 400_000);

  it('HF_HUB_OFFLINE=1 renders from the HF cache alone (no lorabuild cache or out/: every cell is rendered again)', async () => {
    const before = withLora('from_hub');
    // without lorabuild's cache and out/ (which it would adopt), the cells must be rendered again
    rmSync(join(dir(), 'cache'), { recursive: true, force: true });
    rmSync(join(dir(), 'out'), { recursive: true, force: true });
    hub.clearLog();
    const offline = await run([], { HF_HUB_OFFLINE: '1' });
    expect(offline.code, offline.stderr.slice(-3000)).toBe(0);
    expect(hub.log).toEqual([]);
    expect(outcome(offline, 'p1 seed 0 · strength 1')).toEqual(['ran']);
    expect(withLora('from_hub')).toBe(before);
    expect(pinned()).toBe(first);
  }, 400_000);

  it('--update moves the pin to the new main: the LoRA cells re-render, the without arm stays', async () => {
    const before = withLora('from_hub');
    const moved = await run(['--update', REPO]);
    expect(moved.code, moved.stderr.slice(-3000)).toBe(0);
    expect(pinned()).not.toBe(first);
    expect(outcome(moved, 'p1 seed 0 · strength 1')).toEqual(['ran']);
    expect(outcome(moved, 'p1 seed 0 · strength 0 (no LoRA)')).toEqual(['cached']);
    expect(withLora('from_hub')).not.toBe(before);
  }, 400_000);

  it('a file the repo does not have is named, with the weight files it has', async () => {
    writeFiles(dir(), { 'lorafile.yaml': ['version: 1', 'models:', '  tiny: { builtin: tiny, seed: 0 }', 'renders:', render('from_hub', `hub: ${REPO}, file: 80s.safetensors`)].join('\n') });
    const wrong = await run();
    expect(wrong.code).not.toBe(0);
    expect(wrong.stdout + wrong.stderr).toContain(`model ${REPO} at`);
    expect(wrong.stdout + wrong.stderr).toContain(`has no file 80s.safetensors`);
    expect(wrong.stdout + wrong.stderr).toContain(FILE);
  }, 400_000);

  it('an SDXL LoRA on the Hub is refused from its header before it is downloaded, naming both families', async () => {
    const k = (name: string, down: number[], up: number[]) => ({ [`${name}.lora_down.weight`]: zeros(down), [`${name}.lora_up.weight`]: zeros(up) });
    const sdxl = join(tmp.dir, 'sdxl.safetensors');
    await writeFixture(sdxl, {
      tensors: {
        ...k('lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k', [4, 2048], [640, 4]),
        ...k('lora_te2_text_model_encoder_layers_0_self_attn_q_proj', [4, 1280], [1280, 4]),
      },
    });
    const commit = hub.addRepo('lab/xl', [{ path: 'xl_style.safetensors', content: readFileSync(sdxl) }], { kind: 'model' });
    writeFiles(dir(), { 'lorafile.yaml': ['version: 1', 'models:', '  tiny: { builtin: tiny, seed: 0 }', 'renders:', render('from_hub', 'hub: lab/xl, file: xl_style.safetensors')].join('\n') });
    hub.clearLog();
    const refused = await run();
    expect(refused.code).not.toBe(0);
    expect(refused.stdout + refused.stderr).toContain("lab/xl/xl_style.safetensors is an SDXL LoRA (cross-attention context 2048");
    expect(refused.stdout + refused.stderr).toContain("tiny is lorabuild's tiny SD1 builtin");
    const reads = hub.contentRequests().filter((r) => r.path.endsWith('xl_style.safetensors'));
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.every((r) => r.range !== undefined)).toBe(true);
    expect(existsSync(join(tmp.dir, 'hf', 'hub', 'models--lab--xl', 'snapshots', commit, 'xl_style.safetensors'))).toBe(false);
    expect(refused.events.filter((e) => e.stage === 'render:from_hub' && e.item && e.outcome === 'ran')).toEqual([]);
  }, 400_000);

  it('a hub entry without a file, or a revision without a hub, is a lorafile error at the entry', async () => {
    const bad = ['version: 1', 'models:', '  tiny: { builtin: tiny, seed: 0 }', 'renders:', '  r:', '    model: tiny', '    loras:', `      - { hub: ${REPO} }`, `      - { file: x.safetensors, revision: v1 }`, '    prompts: ["a"]', ''].join('\n');
    writeFiles(dir(), { 'lorafile.yaml': bad });
    const result = await runCli(['plan'], { cwd: dir() });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`lorafile.yaml:8:`);
    expect(result.stderr).toContain(`loras[0] names hub ${REPO} but no file in it`);
    expect(result.stderr).toContain(`lorafile.yaml:9:`);
    expect(result.stderr).toContain("'revision' only applies to hub LoRAs");
    expect(existsSync(join(dir(), 'lorafile.yaml'))).toBe(true);
  }, 60_000);
});
