// The remote cache end to end, against Debian's nginx (WebDAV PUT) on 127.0.0.1: student A builds
// and uploads; student B (a fresh clone, empty cache) gets the LoRA and the grid without running
// train or render; a corrupted blob on the server is detected, rebuilt and replaced; a server that
// goes away mid-run leaves a build that finishes locally; read-only never uploads; credentials
// never reach the lock, the logs or the output.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { makeTempDir, runCli, startCli, waitForLine, writeFiles, type CliResult } from './helpers/cli.js';
import { startRemoteCache, type RemoteCacheServer } from './helpers/services.js';
import { writeRingShapes } from './helpers/shapes.js';

const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1', LORABUILD_CONFIG: '/nonexistent/lorabuild.yaml' };
const TOKEN = 'tok-3f1d2c9e8b7a';

function lorafile(seed = 0, portable = false): string {
  return `version: 1
models:
  tiny: { builtin: tiny, seed: 0 }
datasets:
  shapes: { folder: shapes, trigger: lineart, rules: { min_size: 64 } }
loras:
  shapes_lora: { model: tiny, dataset: shapes, rank: 2, learning_rate: 1.0e-3, steps: 6, checkpoint_every: 3, seed: ${seed}, resolution: 64${portable ? ', portable: true' : ''} }
renders:
  ab: { lora: shapes_lora, prompts: ["lineart, a circle"], seeds: [0], strengths: [0, 1], steps: 3, cfg: 5 }
`;
}

let tmp: { dir: string; cleanup: () => void };
let server: RemoteCacheServer;
const origin = () => join(tmp.dir, 'origin');

/** a fresh clone of the project: lorafile + dataset, no cache, no out/, no lock */
function clone(name: string): string {
  const dir = join(tmp.dir, name);
  cpSync(origin(), dir, { recursive: true });
  return dir;
}

const run = (cwd: string, args: string[] = [], env: Record<string, string> = {}): Promise<CliResult> =>
  runCli(['run', '--json', ...args], { cwd, env: { ...ENV, ...env }, timeoutMs: 300_000 });

const final = (r: CliResult, stage: string) => r.events.find((e) => e.stage === stage && e.item === undefined && typeof e.outcome === 'string' && e.outcome !== 'started');
const started = (r: CliResult) => r.events.filter((e) => e.outcome === 'started').map((e) => e.stage);
const lora = (dir: string) => readFileSync(join(dir, 'out', 'loras', 'shapes_lora', 'shapes_lora.safetensors'));
const grid = (dir: string) => readFileSync(join(dir, 'out', 'renders', 'ab', 'grid.png'));
/** warnings: notes in the --json stream, and any stderr line that says warning */
const warnings = (r: CliResult): string[] => [
  ...r.events.filter((e) => typeof e.note === 'string' && e.note.includes('warning')).map((e) => e.note as string),
  ...r.stderr.split('\n').filter((l) => l.includes('warning')),
];
const acEntries = () => (existsSync(join(server.dataDir, 'ac')) ? readdirSync(join(server.dataDir, 'ac')) : []);

beforeAll(async () => {
  tmp = makeTempDir('lorabuild-remote-');
  server = await startRemoteCache(join(tmp.dir, 'nginx'));
  writeFiles(origin(), { 'lorafile.yaml': lorafile() });
  await writeRingShapes(origin(), ['lineart, shape 0', 'lineart, shape 1', 'lineart, shape 2']);
});
afterAll(() => {
  server?.stop();
  tmp?.cleanup();
});

describe('remote cache (nginx WebDAV, Bazel HTTP protocol)', () => {
  let loraA: Buffer;
  let gridA: Buffer;

  it('student A builds and uploads; B (fresh clone) restores train and render from it without running them', async () => {
    const a = clone('a');
    const first = await run(a, ['--remote-cache', server.url], { LORABUILD_REMOTE_TOKEN: TOKEN });
    expect(first.stderr).not.toMatch(/internal error/);
    expect(warnings(first)).toEqual([]);
    expect(first.code).toBe(0);
    expect(final(first, 'train:shapes_lora')?.outcome).toBe('ran');
    expect(final(first, 'render:ab')?.outcome).toBe('ran');
    loraA = lora(a);
    gridA = grid(a);
    expect(acEntries().length).toBe(3); // train, render and the report; fetch/prepare/validate stay local
    const summary = first.events.find((e) => 'summary' in e)?.summary as { remote?: { uploadedBlobs: number } } | undefined;
    expect(summary?.remote?.uploadedBlobs).toBeGreaterThan(0);

    const b = clone('b');
    const second = await run(b, [], { LORABUILD_REMOTE_CACHE: server.url, LORABUILD_REMOTE_TOKEN: TOKEN });
    expect(second.code).toBe(0);
    expect(warnings(second)).toEqual([]);
    for (const stage of ['train:shapes_lora', 'render:ab', 'report']) {
      expect(final(second, stage)).toMatchObject({ outcome: 'cached', source: 'remote' });
      expect(started(second)).not.toContain(stage);
    }
    expect(second.events.some((e) => e.stage === 'render:ab' && e.item !== undefined)).toBe(false); // no cell rendered
    expect(lora(b).equals(loraA)).toBe(true);
    expect(grid(b).equals(gridA)).toBe(true);
    // same fingerprints and outputs for the compute stages (fetch/prepare fingerprints name each clone's own folder)
    const lockOf = (dir: string) => parse(readFileSync(join(dir, 'lorafile.lock'), 'utf8')) as { stages: Record<string, { fingerprint: string; outputs: unknown }> };
    for (const stage of ['train:shapes_lora', 'render:ab']) {
      expect(lockOf(b).stages[stage].fingerprint).toBe(lockOf(a).stages[stage].fingerprint);
      expect(lockOf(b).stages[stage].outputs).toEqual(lockOf(a).stages[stage].outputs);
    }

    // the bearer token is sent but never written anywhere
    for (const dir of [a, b]) {
      expect(readFileSync(join(dir, 'lorafile.lock'), 'utf8')).not.toContain(TOKEN);
      for (const log of readdirSync(join(dir, 'cache', 'logs'))) expect(readFileSync(join(dir, 'cache', 'logs', log), 'utf8')).not.toContain(TOKEN);
    }
    expect(first.stdout + first.stderr + second.stdout + second.stderr).not.toContain(TOKEN);

    // CI's check on a submission that commits the lock but not out/: the artifacts come from the remote cache by hash
    const ci = clone('ci');
    cpSync(join(a, 'lorafile.lock'), join(ci, 'lorafile.lock'));
    const alone = await runCli(['check'], { cwd: ci, env: ENV, timeoutMs: 300_000 });
    expect(alone.code).toBe(4);
    const checked = await runCli(['check', '--remote-cache', server.url], { cwd: join(tmp.dir, 'ci'), env: { ...ENV, LORABUILD_CACHE: join(tmp.dir, 'ci-cache') }, timeoutMs: 300_000 });
    expect(checked.stdout).toContain('ok: the lock, the inputs and the artifacts agree');
    expect(checked.stdout).toMatch(/shapes_lora\.safetensors of train:shapes_lora is not committed; its recorded bytes came from the remote cache/);
    expect(checked.code).toBe(0);

    // doctor says which remote cache a run would use and that it answers
    const doctor = await runCli(['doctor'], { cwd: b, env: { ...ENV, LORABUILD_REMOTE_CACHE: server.url, LORABUILD_REMOTE_TOKEN: TOKEN } });
    expect(doctor.stdout).toMatch(/^remote {3}http:\/\/127\.0\.0\.1:\d+ \(read and write; from LORABUILD_REMOTE_CACHE; credentials: bearer token from LORABUILD_REMOTE_TOKEN\): answers/m);
    expect(doctor.stdout + doctor.stderr).not.toContain(TOKEN);

    // B's next run is a plain local no-op
    const third = await run(b, [], { LORABUILD_REMOTE_CACHE: server.url });
    expect(third.events.filter((e) => e.outcome === 'ran' || e.outcome === 'cached')).toEqual([]);
  }, 600_000);

  it('a corrupted blob on the server is detected, rebuilt locally and replaced by a good copy', async () => {
    const blob = join(server.dataDir, 'cas', createHashOf(loraA));
    const good = readFileSync(blob);
    writeFileSync(blob, Buffer.concat([good.subarray(0, good.length - 1), Buffer.from([good[good.length - 1] ^ 0xff])]));
    const c = clone('c');
    const result = await run(c, ['--remote-cache', server.url]);
    expect(result.code).toBe(0);
    expect(warnings(result).join('\n')).toMatch(/remote cache entry for train:shapes_lora ignored: its blob shapes_lora\.safetensors is corrupted on the server: sha256 .* rebuilding it locally/);
    expect(final(result, 'train:shapes_lora')?.outcome).toBe('ran');
    expect(lora(c).equals(loraA)).toBe(true); // CPU training is deterministic
    expect(readFileSync(blob).equals(good)).toBe(true); // the upload replaced the poisoned copy
    // truncated: same treatment
    writeFileSync(blob, good.subarray(0, 100));
    const d = clone('d');
    const again = await run(d, ['--remote-cache', server.url]);
    expect(warnings(again).join('\n')).toMatch(/shapes_lora\.safetensors is corrupted on the server: 100 bytes instead of \d+ \(truncated or replaced\)/);
    expect(lora(d).equals(loraA)).toBe(true);
  }, 600_000);

  it('read-only never uploads; the key names the device class unless the lorafile says portable', async () => {
    const e = clone('e');
    writeFileSync(join(e, 'lorafile.yaml'), lorafile(1, true));
    const before = acEntries().length;
    const result = await run(e, ['--remote-cache', server.url, '--remote-read-only']);
    expect(result.code).toBe(0);
    expect(final(result, 'train:shapes_lora')?.outcome).toBe('ran');
    expect(acEntries().length).toBe(before);
    const params = (dir: string) => (parse(readFileSync(join(dir, 'lorafile.lock'), 'utf8')) as { stages: Record<string, { params: Record<string, unknown> }> }).stages['train:shapes_lora'].params;
    expect(params(e)).toMatchObject({ portable: true });
    expect(params(e).device).toBe('auto'); // the lorafile's setting, not the machine's device class
    expect(params(e)).not.toHaveProperty('torch');
    expect(params(join(tmp.dir, 'a'))).toMatchObject({ device: 'cpu', torch: expect.any(String) });
    expect(params(join(tmp.dir, 'a'))).not.toHaveProperty('portable');
  }, 600_000);

  it('the server stopping mid-run: one warning, the build finishes locally', async () => {
    const f = clone('f');
    writeFileSync(join(f, 'lorafile.yaml'), lorafile(2));
    const child = startCli(['run', '--json', '--remote-cache', server.url], { cwd: f, env: ENV, timeoutMs: 300_000 });
    await waitForLine(child, (line) => line.includes('"train:shapes_lora"') && line.includes('"started"'), 120_000);
    server.stop();
    const result = await child.result;
    expect(result.code).toBe(0);
    expect(final(result, 'train:shapes_lora')?.outcome).toBe('ran');
    expect(final(result, 'render:ab')?.outcome).toBe('ran');
    const said = warnings(result);
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/remote cache http:\/\/127\.0\.0\.1:\d+ unreachable while .*\(ECONNREFUSED\); building locally without it/);

    // and a server that is down from the start: same
    const g = clone('g');
    const down = await run(g, ['--remote-cache', server.url]);
    expect(down.code).toBe(0);
    expect(warnings(down)).toHaveLength(1);
    expect(lora(g).equals(loraA)).toBe(true);
  }, 600_000);
});

function createHashOf(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
