// Hostile lorafiles, generated: every field of the schema set to every hostile value, plus names,
// aliases (bombs, unresolved, heavy legal reuse), YAML syntax damage, binary junk, bounds and out:.
// Every case must be accepted (the value is in fact valid) or rejected with positioned diagnostics
// (file:line:col, exit 2 through the CLI); none may crash or hang. In-process for the whole corpus,
// through `lorabuild plan` / `status` for a sample of every kind.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ConfigError } from '../src/config/errors.js';
import { parseConfig } from '../src/config/load.js';
import { keysAt } from '../src/config/schema-walk.js';
import { makeTempDir, runCli } from './helpers/cli.js';
import { RAW_CONTROL, Tally, withLimit } from './helpers/hostile.js';

const BASE = {
  version: 1,
  models: { tiny: { builtin: 'tiny' } },
  datasets: { ds: { folder: 'data', trigger: 'one-line-art', rules: { max_tokens: 75 } } },
  loras: { lora: { model: 'tiny', dataset: 'ds', steps: 100, checkpoint_every: 50 } },
  renders: { ab: { lora: 'lora', prompts: ['a face'], seeds: [0, 1], strengths: [0, 1] } },
};

/** YAML text of hostile values (raw: quoting, tags and escapes are part of the case) */
const VALUES: [string, string][] = [
  ['minus one', '-1'],
  ['zero', '0'],
  ['1e12', '1e12'],
  ['2^53+1', '9007199254740993'],
  ['1e308', '1e308'],
  ['-1e308', '-1e308'],
  ['NaN', '.nan'],
  ['infinity', '.inf'],
  ['minus infinity', '-.inf'],
  ['a fraction', '0.5'],
  ['a quoted number', '"4"'],
  ['true', 'true'],
  ['null', 'null'],
  ['an empty list', '[]'],
  ['an empty mapping', '{}'],
  ['a list', '[1, 2]'],
  ['5,000 characters', JSON.stringify('x'.repeat(5000))],
  ['terminal escapes', '"\\e[2J\\e]0;pwned\\a"'],
  ['a NUL', '"\\0"'],
  ['bidi override', '"\\u202Egnp.exe"'],
  ['binary tag', '!!binary aGVsbG8='],
  ['an unresolved alias', '*nope'],
  ['a path outside', '"../../../../etc/passwd"'],
  ['a device', '"/dev/zero"'],
  ['a Windows path', '"C:\\\\data"'],
  ['hex', '0x10'],
  ['a python tag', '!!python/object:os.system "echo pwned"'],
];

const SECTION_ENTRY: Record<string, [string, Record<string, unknown>]> = {
  models: ['tiny', BASE.models.tiny],
  datasets: ['ds', BASE.datasets.ds],
  loras: ['lora', BASE.loras.lora],
  renders: ['ab', BASE.renders.ab],
};

/** every settable field: top-level keys, each section entry's keys, dataset rules, render score */
function fieldPaths(): string[][] {
  const paths: string[][] = keysAt([]).filter((k) => !(k in SECTION_ENTRY)).map((k) => [k]);
  for (const [section, [entry]] of Object.entries(SECTION_ENTRY)) {
    for (const key of keysAt([section, entry])) paths.push([section, entry, key]);
  }
  for (const key of keysAt(['datasets', 'ds', 'rules'])) paths.push(['datasets', 'ds', 'rules', key]);
  paths.push(['renders', 'ab', 'score', 'clip']);
  return paths;
}

const MARK = 'HOSTILE_VALUE_MARK';

/** the base lorafile with one field set to a raw YAML value */
function withValue(path: string[], raw: string): string {
  const doc = structuredClone(BASE) as Record<string, unknown>;
  let node = doc;
  for (const key of path.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Record<string, unknown>;
  }
  node[path.at(-1)!] = MARK;
  return stringify(doc).replace(MARK, raw);
}

function structuralCases(): [string, string | Buffer][] {
  const cases: [string, string | Buffer][] = [];
  const base = stringify(BASE);
  // aliases: bombs of growing depth, one without its anchor, and legal heavy reuse
  for (let depth = 2; depth <= 9; depth++) {
    const lines = ['version: 1', 'x0: &a0 [a, a, a, a, a, a, a, a, a]'];
    for (let i = 1; i <= depth; i++) lines.push(`x${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(', ')}]`);
    cases.push([`alias bomb depth ${depth}`, `${lines.join('\n')}\n`]);
  }
  cases.push(['alias before its anchor', 'version: 1\nmodels:\n  a: *m\n  b: &m {builtin: tiny}\n']);
  for (const uses of [101, 500, 999]) {
    cases.push([`one anchor used ${uses} times`, `version: 1\nmodels:\n  t: &m {builtin: tiny}\n${Array.from({ length: uses }, (_, i) => `  m${i}: *m`).join('\n')}\n`]);
  }
  cases.push(['merge key', 'version: 1\nmodels:\n  t: &m {builtin: tiny}\n  u: {<<: *m, seed: 2}\n']);
  // names
  for (const [what, name] of [
    ['300-character lora name', 'a'.repeat(300)],
    ['101-character lora name', 'b'.repeat(101)],
    ['device name con', 'con'],
    ['device name NUL.x', 'NUL.x'],
    ['device name com1', 'com1'],
    ['trailing dot', 'lora.'],
    ['dot-dot', '..'],
    ['path separator', 'a/b'],
    ['space', 'a b'],
    ['unicode', 'ロラ'],
    ['escape in a name', '\u001b[2J'],
  ] as const) {
    const doc = structuredClone(BASE) as typeof BASE & { loras: Record<string, unknown> };
    doc.loras = { [name]: BASE.loras.lora };
    doc.renders.ab.lora = name;
    cases.push([`name: ${what}`, stringify(doc)]);
  }
  // YAML damage
  cases.push(['tab indentation', base.replace('  tiny:', '\ttiny:')]);
  cases.push(['unterminated quote', base.replace('- a face', '- "a face')]);
  cases.push(['unclosed bracket', 'version: 1\nrenders:\n  ab: {lora: x, prompts: [a\n']);
  cases.push(['duplicate lora', `${base}loras:\n  lora: {model: tiny, dataset: ds}\n`]);
  cases.push(['two documents', `${base}---\nversion: 1\n`]);
  cases.push(['a BOM, then valid', `\ufeff${base}`]);
  cases.push(['CRLF line ends', base.replace(/\n/g, '\r\n')]);
  cases.push(['NUL bytes inside', base.replace('version: 1', 'version: 1\u0000\u0000')]);
  cases.push(['10,000 nested lists', `version: 1\nx: ${'['.repeat(10000)}${']'.repeat(10000)}\n`]);
  cases.push(['10,000 nested mappings', `version: 1\nx: ${'{a: '.repeat(10000)}1${'}'.repeat(10000)}\n`]);
  cases.push(['empty file', '']);
  cases.push(['only comments', '# nothing here\n']);
  cases.push(['top-level list', '- version: 1\n']);
  cases.push(['top-level scalar', 'hello\n']);
  cases.push(['YAML 1.1 booleans', base.replace('builtin: tiny', 'builtin: tiny\n    allow_pickle: yes')]);
  cases.push(['version 2', base.replace('version: 1', 'version: 2')]);
  cases.push(['a python object tag at the top', '!!python/object/apply:os.system ["echo pwned"]\n']);
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed);
  for (let i = 0; i < 10; i++) cases.push([`random bytes ${i}`, Buffer.from(Array.from({ length: 2000 }, () => random() % 256))]);
  // bounds
  const big = (patch: (d: typeof BASE & Record<string, any>) => void) => {
    const doc = structuredClone(BASE) as typeof BASE & Record<string, any>;
    patch(doc);
    return stringify(doc);
  };
  cases.push(['steps 1e12', big((d) => (d.loras.lora.steps = 1e12))]);
  cases.push(['steps 2^53-1', big((d) => (d.loras.lora.steps = 2 ** 53 - 1))]);
  cases.push(['100,000 seeds', `${base}`.replace('    seeds:\n      - 0\n      - 1\n', `    seeds: [${Array.from({ length: 100_000 }, (_, i) => i).join(', ')}]\n`)]);
  cases.push(['2,000 prompts', big((d) => (d.renders.ab.prompts = Array.from({ length: 2000 }, (_, i) => `p${i}`)))]);
  const grid = (prompts: number, seeds: number) => big((d) => ((d.renders.ab.prompts = Array.from({ length: prompts }, (_, i) => `p${i}`)), (d.renders.ab.seeds = Array.from({ length: seeds }, (_, i) => i)), (d.renders.ab.strengths = [1])));
  cases.push(['10,000 cells', grid(100, 100)]);
  cases.push(['10,100 cells', grid(101, 100)]);
  cases.push(['a 1.1 MiB lorafile', `${base}# ${'x'.repeat(1_150_000)}\n`]);
  return cases;
}

type Outcome = { ok: true } | { rejected: string } | { crash: string };

function parseCase(text: string | Buffer): Outcome {
  const source = typeof text === 'string' ? text : text.toString('utf8');
  try {
    parseConfig(source, '/tmp/hostile/lorafile.yaml');
    return { ok: true };
  } catch (err) {
    if (!(err instanceof ConfigError)) return { crash: err instanceof Error ? (err.stack ?? err.message) : String(err) };
    const unplaced = err.diagnostics.find((d) => !d.file || !d.message || (source.length > 0 && source.trim() !== '' && d.line === undefined));
    if (unplaced) return { crash: `a diagnostic without a position: ${JSON.stringify(unplaced)}` };
    return { rejected: err.diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`).join(' | ') };
  }
}

const tally = new Tally('lorafiles');
const cliTally = new Tally('lorafiles through the CLI');
let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-hostile-lorafiles-');
});
afterAll(() => {
  tally.report('with positioned diagnostics');
  cliTally.report('with exit 2 and file:line:col');
  tmp?.cleanup();
});

const fieldCases: [string, string][] = fieldPaths().flatMap((path) => VALUES.map(([what, raw]): [string, string] => [`${path.join('.')} = ${what}`, withValue(path, raw)]));
const allCases: [string, string | Buffer][] = [...fieldCases, ...structuralCases()];

describe('hostile lorafiles, in process', () => {
  it(`${allCases.length} generated cases: accepted or rejected with positions, never a crash or a hang`, () => {
    for (const [name, text] of allCases) {
      // CPU time, not wall time: the machine may be shared; the largest legal file parses in ~1.5 s
      const started = process.cpuUsage();
      const outcome = parseCase(text);
      const used = process.cpuUsage(started);
      const ms = (used.user + used.system) / 1000;
      if (ms > 5000) tally.add(name, 'hung', `${ms} ms of CPU`);
      else if ('ok' in outcome) tally.add(name, 'accepted');
      else if ('rejected' in outcome) tally.add(name, 'rejected', outcome.rejected);
      else tally.add(name, 'crashed', outcome.crash);
    }
    expect(tally.failures()).toEqual([]);
    // the field cases must mostly be refused, and the legal ones accepted
    expect(tally.results.find((r) => r.name === 'loras.lora.steps = 1e12')?.verdict).toBe('rejected');
    expect(tally.results.find((r) => r.name === 'one anchor used 999 times')?.verdict).toBe('accepted');
    expect(tally.results.find((r) => r.name === 'alias bomb depth 9')?.detail).toContain('alias bomb');
    expect(tally.results.find((r) => r.name === 'name: 300-character lora name')?.detail).toContain('names are at most 100 characters');
    expect(tally.results.find((r) => r.name === '100,000 seeds')?.detail).toContain('seeds has more than 1000 items');
    expect(tally.results.find((r) => r.name === '10,100 cells')?.detail).toContain("render 'ab' has 10,100 cells (101 prompts x 100 seeds x 1 columns)");
    expect(tally.results.find((r) => r.name === '10,000 cells')?.verdict).toBe('accepted');
  }, 300_000);
});

describe('hostile lorafiles through the CLI', () => {
  // a sample of every kind: every 97th field case (it cycles through fields and values) and the
  // structural cases (three of the random-bytes ones)
  const sample = [...fieldCases.filter((_, i) => i % 97 === 0), ...structuralCases().filter(([name]) => !/^random bytes [3-9]/.test(name))];
  it(`${sample.length} cases with lorabuild plan: exit 0 or exit 2 with file:line:col, never exit 70`, async () => {
    for (const [i, [name, text]] of sample.entries()) {
      const dir = join(tmp.dir, `case-${i}`);
      mkdirSync(dir);
      writeFileSync(join(dir, 'lorafile.yaml'), text);
      const r = await withLimit(60_000, () => runCli(['plan'], { cwd: dir, timeoutMs: 60_000 }));
      if (r === 'hung' || r.signal) {
        cliTally.add(name, 'hung');
        continue;
      }
      const out = r.stdout + r.stderr;
      if (r.code === 0) cliTally.add(name, 'accepted');
      else if (r.code === 2 && /lorafile\.yaml(:\d+:\d+)?: error: /.test(r.stderr) && !out.includes('internal error') && !RAW_CONTROL.test(out)) cliTally.add(name, 'rejected', r.stderr.split('\n')[0]);
      else cliTally.add(name, 'crashed', `exit ${r.code}: ${out.slice(0, 400)}`);
    }
    expect(cliTally.failures()).toEqual([]);
  }, 900_000);

  it('out: that is the lorafile folder, a dataset, the cache, a file or a link: exit 2 at its line', async () => {
    const dir = join(tmp.dir, 'out-cases');
    mkdirSync(join(dir, 'data'), { recursive: true });
    writeFileSync(join(dir, 'a-file'), 'x');
    symlinkSync('/tmp', join(dir, 'link'));
    const cases: [string, string, string][] = [
      ['.', 'is the lorafile\'s own folder', 'out: .'],
      ['..', "contains the lorafile's own folder", 'out: ..'],
      ['data', "is the folder of dataset 'ds'", 'out: data'],
      ['data/reports', "is inside the folder of dataset 'ds'", 'out: data/reports'],
      ['cache', 'is the cache', 'out: cache'],
      ['a-file', 'is a file, not a folder', 'out: a-file'],
      ['link', 'is a symbolic link', 'out: link'],
    ];
    for (const [out, message] of cases) {
      writeFileSync(join(dir, 'lorafile.yaml'), `version: 1\nout: ${out}\ndatasets:\n  ds:\n    folder: data\n`);
      const r = await runCli(['status'], { cwd: dir });
      const verdict = r.code === 2 && r.stderr.includes(`lorafile.yaml:2:6: error: out: '${out}' ${message}`) ? 'rejected' : 'crashed';
      cliTally.add(`out: ${out}`, verdict, r.stderr.split('\n')[0]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`lorafile.yaml:2:6: error: out: '${out}' ${message}`);
    }
  });
});
