// Grading a TA can trust (issue 21 items 1-3, issue 17 items 14-15), through the CLI on a real
// submission: every hand edit of lorafile.lock is tampered naming the field; check verifies the
// committed out/ files whatever the local cache holds; a LoRA changed together with its hash in the
// lock is named; grade takes no fact check could not verify; rubrics come from outside the repo.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { makeTempDir, REPO_ROOT, writeFiles } from './helpers/cli.js';
import { cloneSubmission, GRADE_FIXTURE, LORA, lorabuildIn, makeSubmission, stageLines, type StageLine } from './helpers/grade-fixture.js';

let tmp: { dir: string; cleanup: () => void };
let student: string;
/** one cache for the fresh clones: it holds the worker's hello, so no check starts Python */
let ciCache: string;
let clones = 0;

const clone = (): string => cloneSubmission(student, join(tmp.dir, `clone-${++clones}`));
const check = (dir: string, cache = ciCache) => lorabuildIn(dir, ['check', '--json'], { LORABUILD_CACHE: cache });

type LockDoc = { stages: Record<string, Record<string, unknown>> };
const readLock = (dir: string) => parseYaml(readFileSync(join(dir, 'lorafile.lock'), 'utf8')) as LockDoc;
const writeLock = (dir: string, lock: LockDoc) => writeFileSync(join(dir, 'lorafile.lock'), stringifyYaml(lock));

/** Sets one value of a stage's lock entry, by path. */
function editLock(dir: string, stage: string, path: string[], value: unknown): void {
  const lock = readLock(dir);
  let node = lock.stages[stage] as Record<string, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string, unknown>;
  expect(path.at(-1)! in node, `${stage} ${path.join('.')} exists`).toBe(true);
  node[path.at(-1)!] = value;
  writeLock(dir, lock);
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const tampered = (lines: StageLine[]) => lines.flatMap((l) => l.findings.filter((f) => f.kind === 'tampered').map((f) => ({ stage: l.stage, ...f })));

beforeAll(async () => {
  tmp = makeTempDir('lorabuild-integrity-');
  student = join(tmp.dir, 'student');
  mkdirSync(student);
  await makeSubmission(student);
  const built = await lorabuildIn(student, ['run', '--json']);
  expect(built.code, built.stderr + built.stdout.slice(-2000)).toBe(0);
  ciCache = join(tmp.dir, 'ci-cache');
  const warm = await check(clone());
  expect(warm.code, warm.stdout + warm.stderr).toBe(0);
}, 600_000);
afterAll(() => tmp?.cleanup());

// Every field of the lock an edit could forge, one fresh clone each (generated cases)
const LOCK_EDITS: { stage: string; path: string[]; value: unknown; named: string }[] = [
  { stage: 'train:one_line_art', path: ['params', 'learning_rate'], value: 0.0002, named: 'params.learning_rate (0.0002 in the lock, 0.0001 here)' },
  { stage: 'train:one_line_art', path: ['params', 'seed'], value: 7, named: 'params.seed (7 in the lock, 0 here)' },
  { stage: 'train:one_line_art', path: ['params', 'rank'], value: 8, named: 'params.rank (8 in the lock, 4 here)' },
  { stage: 'train:one_line_art', path: ['params', 'steps'], value: 1000, named: 'params.steps (1000 in the lock, 4 here)' },
  { stage: 'train:one_line_art', path: ['files', 'one-line-art/text/0.txt'], value: 'ab'.repeat(32), named: 'files.one-line-art/text/0.txt (abababab' },
  { stage: 'report', path: ['params', 'loras', 'train:one_line_art', 'learning_rate'], value: 0.0002, named: 'params.loras (' },
  { stage: 'render:one_line_art_ab', path: ['params', 'cfg'], value: 9, named: 'params.cfg (9 in the lock, 7.5 here)' },
  { stage: 'render:one_line_art_ab', path: ['params', 'seeds'], value: [0, 1, 2], named: 'params.seeds ([0,1,2] in the lock, [0,1] here)' },
  { stage: 'validate:one-line-art', path: ['meta', 'errors'], value: 3, named: 'the outputs it records for validate:one-line-art are not the ones' },
  { stage: 'fetch:one-line-art', path: ['params', 'layout'], value: 'kohya', named: 'params.layout (kohya in the lock, lab here)' },
];

describe('a hand-edited lorafile.lock is tampered (exit 4), naming the field', () => {
  for (const edit of LOCK_EDITS) {
    it(`${edit.stage} ${edit.path.join('.')}`, async () => {
      const dir = clone();
      editLock(dir, edit.stage, edit.path, edit.value);
      const r = await check(dir);
      expect(r.code, r.stdout + r.stderr).toBe(4);
      const found = tampered(stageLines(r));
      expect(found.map((f) => f.message).join('\n')).toContain(edit.named);
      expect(found.some((f) => f.file === 'lorafile.lock')).toBe(true);
    });
  }

  it('an output size, an output hash and a fingerprint edited', async () => {
    const dir = clone();
    editLock(dir, 'train:one_line_art', ['outputs', 'one_line_art.safetensors', 'size'], 1000);
    const size = await check(dir);
    expect(size.code).toBe(4);
    expect(tampered(stageLines(size)).map((f) => f.message)).toContainEqual(expect.stringContaining(`it records 1000 bytes for ${LORA} (outputs.one_line_art.safetensors.size of train:one_line_art)`));

    const other = clone();
    editLock(other, 'train:one_line_art', ['fingerprint'], 'ab'.repeat(32));
    const fp = await check(other);
    expect(fp.code).toBe(4);
    expect(tampered(stageLines(fp)).find((f) => f.stage === 'train:one_line_art')?.message).toContain('no longer matches the fingerprint it stores');
  });

  it('the LoRA carries its own record: a lock learning_rate edited to match the rubric contradicts the file', async () => {
    const dir = clone();
    editLock(dir, 'train:one_line_art', ['params', 'learning_rate'], 0.0002);
    const r = await check(dir);
    const messages = tampered(stageLines(r)).map((f) => `${f.file}: ${f.message}`);
    expect(messages).toContainEqual(`${LORA}: ${LORA} was trained with learning_rate 0.0001 (its ss_learning_rate), but lorafile.lock records 0.0002: the LoRA or the lock was edited`);
  });

  it('grade never scores a forged lock value: the fact is "not verified"', async () => {
    const dir = clone();
    editLock(dir, 'train:one_line_art', ['params', 'learning_rate'], 0.0002);
    writeFileSync(join(tmp.dir, 'forged.yaml'), 'checks:\n  - id: lr\n    title: lr from the lock\n    points: 5\n    expect: lock.stages.train:one_line_art.params.learning_rate == 0.0002\n');
    const r = await lorabuildIn(dir, ['grade', '--rubric', join(tmp.dir, 'forged.yaml'), '--json', 'grade.json'], { LORABUILD_CACHE: ciCache });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const grade = JSON.parse(readFileSync(join(dir, 'grade.json'), 'utf8')) as { checks: { messages: string[] }[] };
    expect(grade.checks[0].messages[0]).toMatch(/^lock\.stages\.train:one_line_art\.params\.learning_rate is not verified: check found the lock or the artifacts tampered/);
  });
});

describe('check verifies the committed out/ files whatever the local cache holds', () => {
  const DAMAGE: [string, (dir: string) => void, number, string][] = [
    ['a deleted LoRA', (d) => rmSync(join(d, LORA)), 4, `${LORA} is missing`],
    ['rm -rf out', (d) => rmSync(join(d, 'out'), { recursive: true }), 4, 'out/loras/one_line_art/one_line_art.safetensors is missing'],
    ['a FIFO in place of the LoRA', (d) => (rmSync(join(d, LORA)), execFileSync('mkfifo', [join(d, LORA)])), 4, `${LORA} is a FIFO`],
    ['a folder in place of the LoRA', (d) => (rmSync(join(d, LORA)), mkdirSync(join(d, LORA))), 4, `${LORA} is a folder`],
    ['a symlink to /dev/null', (d) => (rmSync(join(d, LORA)), symlinkSync('/dev/null', join(d, LORA))), 4, `${LORA} is a symbolic link`],
    ['a symlinked loras/ folder', (d) => (renameSync(join(d, 'out/loras'), join(d, 'elsewhere')), symlinkSync(join(d, 'elsewhere'), join(d, 'out/loras'))), 4, 'out/loras is a symbolic link'],
  ];
  for (const [what, damage, code, message] of DAMAGE) {
    it(`${what}: the same verdict with the student's cache and in CI`, async () => {
      // the student's machine: the whole folder, cache included (it still holds every blob)
      const local = join(tmp.dir, `local-${++clones}`);
      cpSync(student, local, { recursive: true });
      damage(local);
      const withCache = await check(local, join(local, 'cache'));
      expect(withCache.code, withCache.stdout + withCache.stderr).toBe(code);
      expect(stageLines(withCache).flatMap((l) => l.findings.map((f) => f.message)).join('\n')).toContain(message);
      // CI: the same commit, no cache
      const ci = clone();
      damage(ci);
      const inCi = await check(ci);
      expect(inCi.code).toBe(code);
    });
  }

  it('an out/ that is a symbolic link is refused before anything runs (exit 2)', async () => {
    const dir = clone();
    renameSync(join(dir, 'out'), join(dir, 'real-out'));
    symlinkSync(join(dir, 'real-out'), join(dir, 'out'));
    const r = await check(dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("out: 'out' is a symbolic link");
  });
});

describe('a LoRA changed together with its hash in the lock', () => {
  it('is tampered (exit 4) naming the LoRA file, from its own sshs_model_hash and from the renders made with it', async () => {
    const dir = clone();
    const file = join(dir, LORA);
    const bytes = readFileSync(file);
    const before = sha256(bytes);
    bytes[bytes.length - 5] ^= 0x01;
    writeFileSync(file, bytes);
    const lock = readFileSync(join(dir, 'lorafile.lock'), 'utf8');
    expect(lock).toContain(before);
    writeFileSync(join(dir, 'lorafile.lock'), lock.replace(before, sha256(bytes)));
    const r = await check(dir);
    expect(r.code, r.stdout + r.stderr).toBe(4);
    const found = tampered(stageLines(r));
    const train = found.find((f) => f.stage === 'train:one_line_art');
    expect(train).toMatchObject({ file: LORA });
    expect(train!.message).toContain('its tensors were changed after training');
    const render = found.find((f) => f.stage === 'render:one_line_art_ab' && f.file === LORA);
    expect(render?.message).toContain(`${LORA} is not the LoRA render:one_line_art_ab was rendered with`);

    // and grade reads nothing from that LoRA: its header would still say rank 4
    writeFileSync(join(tmp.dir, 'rank.yaml'), 'checks:\n  - id: rank\n    title: rank 4\n    points: 5\n    expect: loras.one_line_art.rank == 4\n');
    const graded = await lorabuildIn(dir, ['grade', '--rubric', join(tmp.dir, 'rank.yaml'), '--json', 'grade.json'], { LORABUILD_CACHE: ciCache });
    expect(graded.code, graded.stdout + graded.stderr).toBe(1);
    const grade = JSON.parse(readFileSync(join(dir, 'grade.json'), 'utf8')) as { checks: { passed: boolean; messages: string[] }[] };
    expect(grade.checks[0].passed).toBe(false);
    expect(grade.checks[0].messages[0]).toMatch(/^loras\.one_line_art\.rank is not verified: check found train:one_line_art tampered \(/);
  });
});

describe('grade: facts check verified, rubrics from outside the repository', () => {
  it('facts for resolution, base model hash and image sizes; a LoRA of the tiny test model does not `fit` (SD1.5)', async () => {
    const dir = clone();
    const r = await lorabuildIn(dir, ['grade', '--rubric', join(GRADE_FIXTURE, 'rubric.yaml'), '--json', 'grade.json'], { LORABUILD_CACHE: ciCache });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const { facts, unverified } = JSON.parse(readFileSync(join(dir, 'grade.json'), 'utf8')) as { facts: Record<string, Record<string, Record<string, unknown>>>; unverified: Record<string, string> };
    expect(unverified).toEqual({});
    const lora = facts.loras.one_line_art;
    expect(lora).toMatchObject({ resolution: 64, fits: false, fits_base: true, arch: 'tiny', base_matches: true, verified: true });
    expect(facts.models.tiny).toMatchObject({ source: 'builtin', sha256: lora.base_model_sha256 });
    expect(lora.base_model_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(facts.datasets['one-line-art']).toMatchObject({ verified: true, image_sizes: { min_width: 64, min_height: 64, max_width: 64, max_height: 64 } });
    expect(facts.renders.one_line_art_ab).toMatchObject({ width: 64, height: 64, model_sha256: lora.base_model_sha256 });
  });

  it('--rubric URL (the TA copy, over HTTP); a rubric inside the project gets a warning; a dead URL is exit 2', async () => {
    const rubric = readFileSync(join(GRADE_FIXTURE, 'rubric.yaml'));
    const server: Server = createServer((req, res) => {
      if (req.url === '/rubric.yaml?token=secret') res.writeHead(200, { 'content-type': 'text/yaml' }).end(rubric);
      else if (req.url === '/page') res.writeHead(200, { 'content-type': 'text/html' }).end('<!DOCTYPE html><html></html>');
      else res.writeHead(404).end('no');
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const dir = clone();
      const r = await lorabuildIn(dir, ['grade', '--rubric', `${base}/rubric.yaml?token=secret`], { LORABUILD_CACHE: ciCache });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toContain(`(${base}/rubric.yaml)`);
      expect(r.stdout + r.stderr).not.toContain('secret');
      expect(r.stderr).not.toContain('inside the graded project');

      const local = await lorabuildIn(dir, ['grade', '--rubric', 'rubric.yaml'], { LORABUILD_CACHE: ciCache });
      expect(local.code).toBe(0);
      expect(local.stderr).toContain("warning: the rubric rubric.yaml is inside the graded project, where the student can edit it; grade with the TA's copy");

      const missing = await lorabuildIn(dir, ['grade', '--rubric', `${base}/gone.yaml`], { LORABUILD_CACHE: ciCache });
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain(`${base}/gone.yaml: error: could not download the rubric: HTTP 404`);
      const html = await lorabuildIn(dir, ['grade', '--rubric', `${base}/page`], { LORABUILD_CACHE: ciCache });
      expect(html.code).toBe(2);
      expect(html.stderr).toContain('the URL answered with an HTML page, not a rubric');
    } finally {
      server.close();
    }
  });

  it('captions-valid is "not verified" when check cannot re-run validation (the tokenizer is not in the clone)', async () => {
    const dir = join(tmp.dir, 'tokenizer-student');
    mkdirSync(dir);
    // a dataset validated with the CLIP vocabulary of a `tokenizer:` folder the student did not commit
    await makeSubmission(dir);
    writeFiles(dir, {
      'lorafile.yaml':
        'version: 1\nmodels:\n  sd:\n    checkpoint: sd15.safetensors\n    tokenizer: tok\ndatasets:\n  one-line-art:\n    folder: one-line-art\n    trigger: one-line-art\n    rules: { min_size: 64 }\n' +
        'loras:\n  one_line_art:\n    model: sd\n    dataset: one-line-art\n',
    });
    mkdirSync(join(dir, 'tok'));
    cpSync(join(REPO_ROOT, 'assets/clip/bpe_simple_vocab_16e6.txt.gz'), join(dir, 'tok/bpe_simple_vocab_16e6.txt.gz'));
    const built = await lorabuildIn(dir, ['run', 'validate:one-line-art']);
    expect(built.code, built.stdout + built.stderr).toBe(0);
    const ci = join(tmp.dir, 'tokenizer-ci');
    mkdirSync(ci);
    for (const entry of ['lorafile.yaml', 'lorafile.lock', 'one-line-art', 'out']) cpSync(join(dir, entry), join(ci, entry), { recursive: true });
    writeFileSync(join(tmp.dir, 'captions.yaml'), 'checks:\n  - id: captions-valid\n    title: captions pass validation\n    points: 15\n    expect:\n      - datasets.one-line-art.validated == true\n      - datasets.one-line-art.errors == 0\n');
    const r = await lorabuildIn(ci, ['grade', '--rubric', join(tmp.dir, 'captions.yaml'), '--json', 'grade.json']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const grade = JSON.parse(readFileSync(join(ci, 'grade.json'), 'utf8')) as { checks: { passed: boolean; messages: string[] }[] };
    expect(grade.checks[0].passed).toBe(false);
    expect(grade.checks[0].messages[1]).toMatch(/^datasets\.one-line-art\.errors is not verified: validation did not re-run in check: .*no CLIP tokenizer found/);
    expect(existsSync(join(ci, 'tok'))).toBe(false);
  });
});
