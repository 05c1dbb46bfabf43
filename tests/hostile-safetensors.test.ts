// Hostile .safetensors files, generated: header lengths, encodings, JSON damage, repeated keys,
// deep nesting, bad entries, offsets that overlap / leave gaps / run past the end, metadata of the
// wrong type, too many tensors. The TypeScript reader and the Python worker must give the same
// verdict on every file (one set of rules), name the file in every message, and never crash or
// hang; `lorabuild inspect` refuses them with exit 1 (a sample, plus FIFOs, folders and devices).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsError } from '../src/safetensors/format.js';
import { readSafetensorsHeader } from '../src/safetensors/io.js';
import { makeTempDir, REPO_ROOT, runCli } from './helpers/cli.js';
import { RAW_CONTROL, Tally, withLimit } from './helpers/hostile.js';

/** 8-byte length + header text (or bytes) + data */
function file(header: string | Buffer, data: Buffer | number = 0, length?: bigint): Buffer {
  const json = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(length ?? BigInt(json.length));
  return Buffer.concat([prefix, json, typeof data === 'number' ? Buffer.alloc(data) : data]);
}

const entry = (dtype: unknown, shape: unknown, offsets: unknown) => JSON.stringify({ dtype, shape, data_offsets: offsets });
const header = (entries: Record<string, string>, metadata?: string) => `{${[...(metadata !== undefined ? [`"__metadata__":${metadata}`] : []), ...Object.entries(entries).map(([k, v]) => `${JSON.stringify(k)}:${v}`)].join(',')}}`;
const VALID = header({ a: entry('F32', [2], [0, 8]), b: entry('F16', [3], [8, 14]) }, '{"k":"v"}');

function cases(): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  const add = (name: string, bytes: Buffer) => out.push([name, bytes]);
  add('valid', file(VALID, 14));
  add('valid, padded with spaces', file(`${VALID}      `, 14));
  add('valid, empty', file('{}', 0));
  add('valid, only metadata', file('{"__metadata__":{"x":"y"}}', 0));
  add('valid, two empty tensors at one offset', file(header({ a: entry('F32', [0], [0, 0]), b: entry('F32', [0, 3], [0, 0]) }), 0));
  add('valid, a dtype torch 1.13 cannot load', file(header({ a: entry('U16', [2], [0, 4]), b: entry('F8_E4M3', [2], [4, 6]) }), 6));
  add('valid, a lone surrogate escape in a name', file(header({ '\ud800': entry('F32', [1], [0, 4]) }), 4));
  // lengths
  for (let n = 0; n < 8; n++) add(`${n}-byte file`, Buffer.alloc(n));
  add('header length 0', file('', 0, 0n));
  add('header length 1', file('{', 0, 1n));
  add('header length 2^64-1', file('{}', 0, 2n ** 64n - 1n));
  add('header length past the end', file('{}', 0, 1000n));
  add('header length 100 MiB + 1', file('{}', 0, BigInt(100 * 1024 * 1024 + 1)));
  // encoding
  add('invalid UTF-8 in a name', file(Buffer.concat([Buffer.from('{"'), Buffer.from([0xff, 0xfe]), Buffer.from(`":${entry('F32', [1], [0, 4])}}`)]), 4));
  add('invalid UTF-8 in metadata', file(Buffer.concat([Buffer.from('{"__metadata__":{"k":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}}')]), 0));
  add('overlong UTF-8', file(Buffer.concat([Buffer.from('{"'), Buffer.from([0xc0, 0xaf]), Buffer.from('":{}}')]), 0));
  add('a BOM before the JSON', file(`\ufeff${VALID}`, 14));
  add('NUL padding', file(`${VALID}\u0000\u0000`, 14));
  // JSON
  for (const [what, text] of [
    ['not JSON', '{not json}'],
    ['trailing garbage', `${VALID} x`],
    ['a list', '[1,2]'],
    ['a number', '42'],
    ['null', 'null'],
    ['a string', '"x"'],
    ['unterminated string', '{"a'],
    ['unbalanced', '{{}'],
  ] as const) {
    add(`JSON: ${what}`, file(text, 0));
  }
  // repeated keys
  add('a tensor named twice', file(`{"a":${entry('F32', [1], [0, 4])},"a":${entry('F32', [1], [4, 8])}}`, 8));
  add('a field twice in one entry', file(`{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, 4));
  add('a metadata key twice', file('{"__metadata__":{"k":"1","k":"2"}}', 0));
  add('a name twice, once escaped', file(`{"a":${entry('F32', [1], [0, 4])},"\\u0061":${entry('F32', [1], [4, 8])}}`, 8));
  add('__metadata__ twice', file('{"__metadata__":{},"__metadata__":{}}', 0));
  // nesting
  add('depth 4 in metadata', file('{"__metadata__":{"k":{"x":[1]}}}', 0));
  add('depth 4 in a shape', file(`{"a":${entry('F32', [[1]], [0, 4])}}`, 4));
  add('10,000 nested lists', file(`{"a":${'['.repeat(10000)}${']'.repeat(10000)}}`, 0));
  add('10,000 nested objects', file(`${'{"a":'.repeat(10000)}1${'}'.repeat(10000)}`, 0));
  add('brackets inside a string are text', file(`{"[[[[[[":${entry('F32', [1], [0, 4])}}`, 4));
  // entries
  for (const [what, value] of [
    ['a string entry', '"x"'],
    ['a list entry', '[1]'],
    ['a null entry', 'null'],
    ['a number entry', '5'],
    ['no dtype', '{"shape":[1],"data_offsets":[0,4]}'],
    ['no shape', '{"dtype":"F32","data_offsets":[0,4]}'],
    ['no offsets', '{"dtype":"F32","shape":[1]}'],
    ['unknown dtype', entry('F128', [1], [0, 4])],
    ['lowercase dtype', entry('f32', [1], [0, 4])],
    ['dtype a number', entry(4, [1], [0, 4])],
    ['shape a number', entry('F32', 1, [0, 4])],
    ['negative shape', entry('F32', [-1], [0, 4])],
    ['fractional shape', entry('F32', [1.5], [0, 4])],
    ['boolean shape', entry('F32', [true], [0, 4])],
    ['shape overflowing 2^53', entry('F32', [2 ** 40, 2 ** 40], [0, 4])],
    ['100 dimensions', entry('F32', Array(100).fill(1), [0, 4])],
    ['three offsets', entry('F32', [1], [0, 4, 8])],
    ['negative offset', entry('F32', [1], [-4, 0])],
    ['fractional offset', entry('F32', [1], [0, 4.5])],
    ['string offsets', entry('F32', [1], ['0', '4'])],
    ['end before begin', entry('F32', [1], [4, 0])],
    ['end past the data', entry('F32', [1], [0, 4000])],
    ['span not shape x dtype', entry('F32', [2], [0, 4])],
  ] as const) {
    add(`entry: ${what}`, file(`{"a":${value}}`, 4));
  }
  add('overlapping tensors', file(header({ a: entry('F32', [2], [0, 8]), b: entry('F32', [1], [4, 8]) }), 8));
  add('a gap between tensors', file(header({ a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [8, 12]) }), 12));
  add('trailing bytes after the last tensor', file(header({ a: entry('F32', [1], [0, 4]) }), 12));
  add('data missing at the end', file(header({ a: entry('F32', [2], [0, 8]) }), 4));
  // metadata
  for (const [what, value] of [
    ['a list', '[]'],
    ['a string', '"x"'],
    ['a number value', '{"k":1}'],
    ['a null value', '{"k":null}'],
    ['an object value', '{"k":{}}'],
    ['a boolean value', '{"k":true}'],
  ] as const) {
    add(`metadata: ${what}`, file(`{"__metadata__":${value}}`, 0));
  }
  add('metadata with terminal escapes (valid, shown escaped)', file('{"__metadata__":{"ss_output_name":"\\u001b[2J\\u001b]0;pwned\\u0007"}}', 0));
  // names and counts
  add('an empty tensor name', file(header({ '': entry('F32', [1], [0, 4]) }), 4));
  add('a NUL in a name', file(header({ 'a\u0000b': entry('F32', [1], [0, 4]) }), 4));
  add('a 10,000-character name', file(header({ ['n'.repeat(10_000)]: entry('F32', [1], [0, 4]) }), 4));
  const many = (n: number) => {
    const entries: Record<string, string> = {};
    for (let i = 0; i < n; i++) entries[`t${i}`] = entry('U8', [1], [i, i + 1]);
    return file(header(entries), n);
  };
  add('100,000 tensors (the limit)', many(100_000));
  add('100,002 tensors', many(100_002));
  return out;
}

const PYTHON_CHECK = `
import json, sys
sys.path.insert(0, ${JSON.stringify(join(REPO_ROOT, 'src', 'worker'))})
from lorabuild_worker.safetensors_io import read_header, SafetensorsError
from lorabuild_worker.errors import WorkerError
out = []
for path in json.load(sys.stdin):
    try:
        read_header(path)
        out.append({"path": path, "ok": True})
    except SafetensorsError as exc:
        out.append({"path": path, "ok": False, "message": exc.message})
    except WorkerError as exc:
        out.append({"path": path, "ok": False, "message": exc.message})
    except BaseException as exc:
        out.append({"path": path, "crash": f"{type(exc).__name__}: {exc}"[:300]})
print(json.dumps(out))
`;

const tally = new Tally('safetensors headers');
const cliTally = new Tally('safetensors through lorabuild inspect');
let tmp: { dir: string; cleanup: () => void };
let corpus: [string, string][];
beforeAll(() => {
  tmp = makeTempDir('lorabuild-hostile-st-');
  corpus = cases().map(([name, bytes], i) => {
    const path = join(tmp.dir, `case-${String(i).padStart(3, '0')}.safetensors`);
    writeFileSync(path, bytes);
    return [name, path];
  });
}, 120_000);
afterAll(() => {
  tally.report('by both readers with the file named');
  cliTally.report('with exit 1 naming the file');
  tmp?.cleanup();
});

describe('hostile safetensors headers: TypeScript and the Python worker agree', () => {
  it('every generated file gets the same verdict from both readers, with the file named, no crash, no hang', async () => {
    const python = spawnSync('/usr/bin/python3', ['-c', PYTHON_CHECK], { input: JSON.stringify(corpus.map(([, p]) => p)), encoding: 'utf8', timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
    expect(python.status, python.stderr).toBe(0);
    const verdicts = new Map((JSON.parse(python.stdout) as { path: string; ok?: boolean; message?: string; crash?: string }[]).map((v) => [v.path, v]));
    for (const [name, path] of corpus) {
      const started = process.cpuUsage();
      let ts: { ok: boolean; message?: string; crash?: string };
      try {
        await readSafetensorsHeader(path);
        ts = { ok: true };
      } catch (err) {
        ts = err instanceof SafetensorsError ? { ok: false, message: err.message } : { ok: false, crash: String(err) };
      }
      const cpu = process.cpuUsage(started);
      const py = verdicts.get(path)!;
      if ((cpu.user + cpu.system) / 1000 > 5000) tally.add(name, 'hung', 'TypeScript reader');
      else if (ts.crash || py.crash) tally.add(name, 'crashed', ts.crash ?? py.crash);
      else if (ts.ok !== py.ok) tally.add(name, 'crashed', `the readers disagree: TypeScript ${ts.ok ? 'accepts' : `refuses (${ts.message})`}, Python ${py.ok ? 'accepts' : `refuses (${py.message})`}`);
      else if (ts.ok) tally.add(name, 'accepted');
      else if (ts.message!.startsWith(`${path}: `) && py.message!.startsWith(`${path}: `)) tally.add(name, 'rejected', `${ts.message} | ${py.message}`);
      else tally.add(name, 'crashed', `a message without the file: ${ts.message} | ${py.message}`);
    }
    expect(tally.failures()).toEqual([]);
    const verdict = (name: string) => tally.results.find((r) => r.name === name)?.verdict;
    for (const valid of ['valid', 'valid, padded with spaces', 'valid, a dtype torch 1.13 cannot load', '100,000 tensors (the limit)']) expect(verdict(valid), valid).toBe('accepted');
    for (const bad of ['a tensor named twice', 'a name twice, once escaped', '10,000 nested lists', 'invalid UTF-8 in a name', 'a gap between tensors', '100,002 tensors']) expect(verdict(bad), bad).toBe('rejected');
  }, 600_000);
});

describe('lorabuild inspect on hostile files', () => {
  it('refuses each with exit 1 naming the file, never hangs (FIFO, folder, device, broken link included)', async () => {
    mkdirSync(join(tmp.dir, 'a-folder.safetensors'));
    execFileSync('mkfifo', [join(tmp.dir, 'a-fifo.safetensors')]);
    symlinkSync(join(tmp.dir, 'nowhere'), join(tmp.dir, 'broken-link.safetensors'));
    const special: [string, string][] = [
      ['a folder', join(tmp.dir, 'a-folder.safetensors')],
      ['a FIFO', join(tmp.dir, 'a-fifo.safetensors')],
      ['/dev/zero', '/dev/zero'],
      ['/dev/null', '/dev/null'],
      ['a broken link', join(tmp.dir, 'broken-link.safetensors')],
      ['a missing file', join(tmp.dir, 'missing.safetensors')],
    ];
    // a sample of the corpus (every 4th case) and the special files
    const sample = [...corpus.filter((_, i) => i % 4 === 0), ...special];
    for (const [name, path] of sample) {
      const r = await withLimit(60_000, () => runCli(['inspect', path], { cwd: tmp.dir, timeoutMs: 60_000 }));
      if (r === 'hung' || r.signal) {
        cliTally.add(name, 'hung');
        continue;
      }
      const out = r.stdout + r.stderr;
      if (RAW_CONTROL.test(out)) cliTally.add(name, 'crashed', `raw control characters in the output: ${JSON.stringify(out.slice(0, 200))}`);
      else if (r.code === 0) cliTally.add(name, 'accepted');
      else if (r.code === 1 && r.stderr.startsWith(`lorabuild inspect: ${path}: `)) cliTally.add(name, 'rejected', r.stderr.trim());
      else cliTally.add(name, 'crashed', `exit ${r.code}: ${out.slice(0, 300)}`);
    }
    expect(cliTally.failures()).toEqual([]);
    expect(cliTally.results.filter((r) => ['a FIFO', 'a folder', '/dev/zero'].includes(r.name)).map((r) => r.detail)).toEqual([
      `lorabuild inspect: ${join(tmp.dir, 'a-folder.safetensors')}: is a folder, not a .safetensors file`,
      `lorabuild inspect: ${join(tmp.dir, 'a-fifo.safetensors')}: is a FIFO, not a .safetensors file`,
      'lorabuild inspect: /dev/zero: is a device, not a .safetensors file',
    ]);
  }, 600_000);
});
