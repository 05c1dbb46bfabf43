// `lorabuild check` and `lorabuild grade` on a real submission: the tiny one-line-art fixture is
// built once with `lorabuild run` (the student's machine, with a torch that reports another
// version), then copied the way a fresh clone has it — lorafile, lock, dataset, out/, NO cache —
// and checked and graded there, intact and after each kind of damage.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFileSync, chmodSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { parse as parseYaml } from 'yaml';
import { makeTempDir, REPO_ROOT, runCli, writeFiles, type CliResult } from './helpers/cli.js';

const FIXTURE = join(REPO_ROOT, 'tests', 'fixtures', 'grade');
const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1', GITHUB_STEP_SUMMARY: undefined };
const CAPTIONS = ['one-line-art, a face, side view', 'one-line-art, a cat sitting', 'one-line-art, a hand', 'one-line-art, a bird in flight'];
const FAKE_TORCH = '2.4.1+cu121';
const LORA = 'out/loras/one_line_art/one_line_art.safetensors';

let tmp: { dir: string; cleanup: () => void };
let student: string;

async function makeSubmission(dir: string): Promise<void> {
  cpSync(join(FIXTURE, 'lorafile.yaml'), join(dir, 'lorafile.yaml'));
  for (const [i, caption] of CAPTIONS.entries()) {
    const svg =
      `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="white"/>` +
      `<path d="M${8 + i * 6} 50 C 20 ${10 + i * 5}, 44 ${10 + i * 5}, 56 50" fill="none" stroke="black" stroke-width="2"/></svg>`;
    writeFiles(dir, { [`one-line-art/image/${i}.jpeg`]: await sharp(Buffer.from(svg)).jpeg().toBuffer(), [`one-line-art/text/${i}.txt`]: `${caption}\n` });
  }
}

/** A python that reports another torch version: the student's machine is not the CI machine. */
function fakeTorchPython(dir: string): string {
  const site = join(dir, 'fake-torch-site');
  writeFiles(site, { 'sitecustomize.py': `import torch\ntorch.__version__ = ${JSON.stringify(FAKE_TORCH)}\n` });
  const wrapper = join(dir, 'python3-student');
  writeFileSync(wrapper, `#!/bin/sh\nPYTHONPATH=${site}\${PYTHONPATH:+:\$PYTHONPATH} exec /usr/bin/python3 "$@"\n`);
  chmodSync(wrapper, 0o755);
  return wrapper;
}

/** What CI sees: the committed files of the submission and an empty cache of its own. */
function freshClone(name: string): string {
  const dir = join(tmp.dir, name);
  mkdirSync(dir);
  for (const entry of ['lorafile.yaml', 'lorafile.lock', 'one-line-art', 'out']) cpSync(join(student, entry), join(dir, entry), { recursive: true });
  cpSync(join(FIXTURE, 'rubric.yaml'), join(dir, 'rubric.yaml'));
  return dir;
}

const lorabuild = (cwd: string, args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> =>
  runCli(args, { cwd, env: { ...ENV, ...env }, timeoutMs: 400_000 });

interface StageLine {
  stage: string;
  mode: string;
  status: string;
  findings: { kind: string; message: string; file?: string }[];
}
const stageLines = (r: CliResult) => r.events.filter((e) => typeof e.stage === 'string') as unknown as StageLine[];

const rubricChecks = () => (parseYaml(readFileSync(join(FIXTURE, 'rubric.yaml'), 'utf8')) as { checks: { id: string; points: number }[] }).checks;
const totalPoints = () => rubricChecks().reduce((s, c) => s + c.points, 0);
const pointsOf = (id: string) => rubricChecks().find((c) => c.id === id)!.points;

interface GradeJson {
  points: number;
  earned: number;
  passed: boolean;
  checks: { id: string; passed: boolean; earned: number; messages: string[] }[];
  facts: Record<string, unknown>;
}
const readGrade = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as GradeJson;

beforeAll(async () => {
  tmp = makeTempDir('lorabuild-grade-');
  student = join(tmp.dir, 'student');
  mkdirSync(student);
  await makeSubmission(student);
  const built = await lorabuild(student, ['run', '--json'], { LORABUILD_PYTHON: fakeTorchPython(tmp.dir) });
  expect(built.code, built.stderr + built.stdout.slice(-2000)).toBe(0);
  expect(existsSync(join(student, LORA))).toBe(true);
  expect(readFileSync(join(student, 'lorafile.lock'), 'utf8')).toContain(FAKE_TORCH);
}, 600_000);
afterAll(() => tmp?.cleanup());

describe('lorabuild check in a fresh clone (empty cache)', () => {
  it('passes an intact submission: cheap stages re-run, GPU stages verified, torch version only noted', async () => {
    const dir = freshClone('intact');
    const r = await lorabuild(dir, ['check', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const lines = stageLines(r);
    expect(lines.map((l) => `${l.stage} ${l.mode} ${l.status}`)).toEqual([
      'fetch:one-line-art rerun ok',
      'prepare:one-line-art rerun ok',
      'validate:one-line-art rerun ok',
      'train:one_line_art verified ok',
      'render:one_line_art_ab verified ok',
      'report verified ok',
    ]);
    const env = lines.find((l) => l.stage === 'train:one_line_art')!.findings.find((f) => f.kind === 'environment');
    expect(env?.message).toContain(`torch ${FAKE_TORCH}`);
    // nothing was trained or rendered: the cache holds no LoRA made here, only what out/ supplied
    expect(existsSync(join(dir, 'cache'))).toBe(true);
    expect(r.events.at(-1)).toMatchObject({ summary: true, exitCode: 0 });
  });

  it('--rebuild re-runs training and rendering too and gets the same LoRA and images', async () => {
    const dir = freshClone('rebuild');
    const r = await lorabuild(dir, ['check', '--rebuild', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const lines = stageLines(r);
    expect(lines.filter((l) => l.mode === 'rerun').map((l) => l.stage)).toEqual(['fetch:one-line-art', 'prepare:one-line-art', 'validate:one-line-art', 'train:one_line_art', 'render:one_line_art_ab']);
    expect(lines.flatMap((l) => l.findings).filter((f) => f.message.includes('did not reproduce'))).toEqual([]);
  });

  it('an edited caption without a re-run is stale, naming the file and the stages built from it', async () => {
    const dir = freshClone('edited-caption');
    writeFileSync(join(dir, 'one-line-art/text/1.txt'), 'one-line-art, a dog sitting\n');
    const r = await lorabuild(dir, ['check']);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    expect(r.stdout).toContain('one-line-art/text/1.txt changed since fetch:one-line-art was built');
    expect(r.stdout).toMatch(/one-line-art\/text\/1\.txt changed;[^\n]* since train:one_line_art was built\n/);
    // the way out is said once, on the verdict line, not after each of the six stale stages
    expect(r.stdout.match(/run `lorabuild run`, then commit lorafile.lock and out\//g)).toHaveLength(1);
    expect(r.stdout).toContain('stale: the lock does not describe the current inputs — run `lorabuild run`, then commit lorafile.lock and out/\n');

    // a caption that now breaks a rule: the re-run validation says so
    writeFileSync(join(dir, 'one-line-art/text/1.txt'), 'a dog sitting\n');
    const invalid = await lorabuild(dir, ['check']);
    expect(invalid.code, invalid.stdout + invalid.stderr).toBe(3);
    expect(invalid.stdout).toContain('failed: validate:one-line-art failed when re-run: 1 error in captions');
  });

  it('a LoRA with one byte changed is tampered, named by its path', async () => {
    const dir = freshClone('tampered');
    const file = join(dir, LORA);
    const bytes = readFileSync(file);
    bytes[bytes.length - 5] ^= 0x01;
    writeFileSync(file, bytes);
    const r = await lorabuild(dir, ['check', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(4);
    const train = stageLines(r).find((l) => l.stage === 'train:one_line_art')!;
    expect(train.status).toBe('tampered');
    const tampered = train.findings.filter((f) => f.kind === 'tampered');
    expect(tampered).toHaveLength(1);
    expect(tampered[0]).toMatchObject({ file: LORA });
    expect(tampered[0].message).toContain('differs from what lorafile.lock records');
    // the stages after it are still judged against the lock
    expect(stageLines(r).find((l) => l.stage === 'render:one_line_art_ab')!.status).toBe('ok');

    // a lock edited to point outside out/ is refused before any path is built from it
    bytes[bytes.length - 5] ^= 0x01;
    writeFileSync(file, bytes);
    const lock = readFileSync(join(dir, 'lorafile.lock'), 'utf8');
    expect(lock).toContain('      one_line_art.safetensors:\n');
    writeFileSync(join(dir, 'lorafile.lock'), lock.replace('      one_line_art.safetensors:\n', '      ../../../escape.safetensors:\n'));
    const edited = await lorabuild(dir, ['check']);
    expect(edited.code, edited.stdout + edited.stderr).toBe(4);
    expect(edited.stdout).toContain("stage train:one_line_art: output name '../../../escape.safetensors' must not contain empty, '.' or '..' parts — lorafile.lock was damaged or edited by hand");
  });

  it('a deleted artifact is reported missing (exit 4) and a missing lock as never built (exit 3)', async () => {
    const dir = freshClone('missing');
    rmSync(join(dir, 'out/renders/one_line_art_ab/grid.png'));
    const r = await lorabuild(dir, ['check']);
    expect(r.code, r.stdout + r.stderr).toBe(4);
    expect(r.stdout).toContain('out/renders/one_line_art_ab/grid.png is missing');
    rmSync(join(dir, 'lorafile.lock'));
    const none = await lorabuild(dir, ['check']);
    expect(none.code, none.stdout + none.stderr).toBe(3);
    expect(none.stdout).toContain('lorafile.lock is missing');
  });

  it('an invalid lorafile exits 2 with its position', async () => {
    const dir = freshClone('invalid');
    writeFileSync(join(dir, 'lorafile.yaml'), readFileSync(join(dir, 'lorafile.yaml'), 'utf8').replace('rank: 4', 'rnak: 4'));
    const r = await lorabuild(dir, ['check']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/lorafile\.yaml:\d+:5: error: lora 'one_line_art': unknown key 'rnak'/);
    expect(existsSync(join(dir, 'cache'))).toBe(false);
  });
});

describe('lorabuild grade', () => {
  it('grades a good submission full marks, with JUnit (one testcase per check), JSON, Markdown and the step summary', async () => {
    const dir = freshClone('graded');
    const summary = join(dir, 'step-summary.md');
    writeFileSync(summary, '# earlier step\n');
    const r = await lorabuild(dir, ['grade', '--rubric', 'rubric.yaml', '--junit', 'junit.xml', '--json', 'grade.json', '--markdown', 'grade.md'], { GITHUB_STEP_SUMMARY: summary });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`total: ${totalPoints()} / ${totalPoints()} points`);

    const grade = readGrade(join(dir, 'grade.json'));
    expect(grade).toMatchObject({ points: totalPoints(), earned: totalPoints(), passed: true });
    expect(grade.facts.loras).toMatchObject({ one_line_art: { rank: 4, alpha: 4, steps: 4, learning_rate: 1e-4, base_model: 'tiny', targets: ['attention'], checkpoints: [2] } });
    expect(grade.facts.renders).toMatchObject({ one_line_art_ab: { both_arms: true, with_lora: 2, without_lora: 2, cells: 4, grid: true } });
    expect(grade.facts.datasets).toMatchObject({ 'one-line-art': { items: 4, errors: 0, trigger_coverage: { present: 4, of: 4, ratio: 1 } } });

    const xml = parseXml(readFileSync(join(dir, 'junit.xml'), 'utf8'));
    expect(xml.name).toBe('testsuites');
    const suite = xml.children.find((c) => c.name === 'testsuite')!;
    const cases = suite.children.filter((c) => c.name === 'testcase');
    expect(cases.map((c) => c.attributes.name.split(':')[0])).toEqual(rubricChecks().map((c) => c.id));
    expect(cases.every((c) => c.children.length === 0)).toBe(true);
    expect(suite.attributes).toMatchObject({ tests: String(rubricChecks().length), failures: '0' });

    const markdown = readFileSync(join(dir, 'grade.md'), 'utf8');
    expect(markdown).toContain(`${totalPoints()} / ${totalPoints()} points`);
    expect(readFileSync(summary, 'utf8')).toBe(`# earlier step\n${markdown}`);
  });

  it('a missing render arm loses the render points (and the check points), nothing else', async () => {
    const dir = freshClone('one-arm');
    const cells = JSON.parse(readFileSync(join(dir, 'out/renders/one_line_art_ab/cells.json'), 'utf8')) as { cells: { file: string; strength: number }[] };
    const without = cells.cells.filter((c) => c.strength === 0);
    expect(without.length).toBe(2);
    for (const c of without) rmSync(join(dir, 'out/renders/one_line_art_ab', c.file));
    const r = await lorabuild(dir, ['grade', '--rubric', 'rubric.yaml', '--junit', 'junit.xml', '--json', 'grade.json']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const grade = readGrade(join(dir, 'grade.json'));
    expect(grade.checks.filter((c) => !c.passed).map((c) => c.id)).toEqual(['reproducible', 'renders']);
    expect(grade.earned).toBe(totalPoints() - pointsOf('reproducible') - pointsOf('renders'));
    expect(grade.checks.find((c) => c.id === 'renders')!.messages).toContain('renders.one_line_art_ab.without_lora is 0; expected >= 2');
    const suite = parseXml(readFileSync(join(dir, 'junit.xml'), 'utf8')).children[0];
    const failed = suite.children.filter((c: XmlElement) => c.children.some((f) => f.name === 'failure'));
    expect(failed.map((c) => c.attributes.name.split(':')[0])).toEqual(['reproducible', 'renders']);
    expect(failed[1].children[0].attributes.message).toContain('without_lora is 0');
  });

  it('a stale submission fails the check points; an unknown fact names the nearby facts', async () => {
    const dir = freshClone('stale-graded');
    appendFileSync(join(dir, 'one-line-art/text/2.txt'), 'one more line\n');
    writeFileSync(
      join(dir, 'extra.yaml'),
      'checks:\n  - id: typo\n    title: misspelt fact\n    points: 1\n    expect: loras.one_line_art.rnak == 4\n  - id: stale\n    title: check\n    points: 1\n    expect: check.status == "stale"\n',
    );
    const r = await lorabuild(dir, ['grade', '--rubric', 'extra.yaml', '--json', 'grade.json']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const grade = readGrade(join(dir, 'grade.json'));
    expect(grade.checks.map((c) => [c.id, c.passed])).toEqual([
      ['typo', false],
      ['stale', true],
    ]);
    expect(grade.checks[0].messages[0]).toMatch(/^no fact 'loras\.one_line_art\.rnak' \(did you mean 'rank'\? available at loras\.one_line_art: alpha, /);
  });

  it('a bad rubric exits 2 with file:line:col diagnostics, before any work', async () => {
    const dir = freshClone('bad-rubric');
    writeFileSync(join(dir, 'bad.yaml'), 'checks:\n  - id: a\n    title: x\n    points: 2\n    expect: loras.x.rank === 4\n  - id: b\n    pionts: 1\n    expect: check.ok == true\n');
    const r = await lorabuild(dir, ['grade', '--rubric', 'bad.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("bad.yaml:5:26: error: check 1: unknown operator '==='");
    expect(r.stderr).toMatch(/bad\.yaml:7:5: error: unknown key 'pionts' in check 2\n[^]*did you mean 'points'\?/);
    expect(existsSync(join(dir, 'cache'))).toBe(false);
  });

  it('--reproduce re-trains on this CPU into a temporary cache and matches the submitted LoRA bit for bit', async () => {
    const dir = freshClone('reproduce');
    writeFileSync(join(dir, 'repro.yaml'), 'checks:\n  - id: reproduces\n    title: bit-exact\n    points: 5\n    expect:\n      - reproduce.one_line_art.identical == true\n      - reproduce.one_line_art.within_tolerance == true\n');
    const before = readFileSync(join(dir, LORA));
    const r = await lorabuild(dir, ['grade', '--rubric', 'repro.yaml', '--reproduce', '--json', 'grade.json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(readGrade(join(dir, 'grade.json')).facts.reproduce).toMatchObject({ one_line_art: { ran: true, identical: true, max_relative_diff: 0, device: 'cpu', submitted_device: 'cpu' } });
    expect(readFileSync(join(dir, LORA)).equals(before)).toBe(true);
  });
});

interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

/** A strict little XML reader for the JUnit file: declaration, elements, attributes, text, entities. */
function parseXml(source: string): XmlElement {
  const decode = (t: string) => {
    if (/&(?!(?:lt|gt|amp|quot|apos);)/.test(t)) throw new Error(`bare & in XML text: ${t}`);
    return t.replace(/&(lt|gt|amp|quot|apos);/g, (_, e: string) => ({ lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" })[e]!);
  };
  let pos = 0;
  const rest = () => source.slice(pos);
  const skipSpace = () => {
    pos += /^\s*/.exec(rest())![0].length;
  };
  const decl = /^<\?xml[^?]*\?>/.exec(rest());
  if (decl) pos += decl[0].length;
  skipSpace();
  const element = (): XmlElement => {
    const open = /^<([A-Za-z_][\w.-]*)((?:\s+[A-Za-z_][\w.-]*="[^"<]*")*)\s*(\/?)>/.exec(rest());
    if (!open) throw new Error(`expected an element at offset ${pos}: ${rest().slice(0, 40)}`);
    pos += open[0].length;
    const attributes: Record<string, string> = {};
    for (const m of open[2].matchAll(/([A-Za-z_][\w.-]*)="([^"]*)"/g)) attributes[m[1]] = decode(m[2]);
    const el: XmlElement = { name: open[1], attributes, children: [], text: '' };
    if (open[3] === '/') return el;
    for (;;) {
      const text = /^[^<]*/.exec(rest())![0];
      el.text += decode(text);
      pos += text.length;
      if (rest().startsWith(`</${el.name}>`)) {
        pos += el.name.length + 3;
        return el;
      }
      if (rest().startsWith('</')) throw new Error(`mismatched closing tag at offset ${pos} inside <${el.name}>`);
      el.children.push(element());
    }
  };
  const root = element();
  skipSpace();
  if (pos !== source.length) throw new Error(`content after the root element at offset ${pos}`);
  return root;
}
