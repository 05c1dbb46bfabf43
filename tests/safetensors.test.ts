import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { mkdtemp, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensorsHeader, readTensorBytes, toFloat32, writeSafetensors, float32Tensor } from '../src/safetensors/io.js';
import { SafetensorsError } from '../src/safetensors/format.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lorabuild-st-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A file with a hand-written header, to feed each check exactly one defect. */
async function rawFile(name: string, header: unknown, data: Buffer = Buffer.alloc(0), lengthOverride?: bigint): Promise<string> {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  const file = join(dir, name);
  await writeFile(file, Buffer.concat([prefix, json, data]));
  return file;
}

async function expectRejects(file: string, pattern: RegExp): Promise<void> {
  const err = await readSafetensorsHeader(file).then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(SafetensorsError);
  expect((err as Error).message).toContain(file);
  expect((err as Error).message).toMatch(pattern);
}

describe('safetensors round trip', () => {
  it('writes and reads back tensors, shapes, dtypes and metadata', async () => {
    const file = join(dir, 'round.safetensors');
    const half = Buffer.alloc(4);
    half.writeUInt16LE(0x3c00, 0); // 1.0
    half.writeUInt16LE(0xc000, 2); // -2.0
    const bf = Buffer.alloc(2);
    bf.writeUInt16LE(0x4040, 0); // 3.0
    await writeSafetensors(
      file,
      {
        'b.weight': float32Tensor([2, 3], [1, 2, 3, 4, 5, 6]),
        'a.alpha': float32Tensor([], [4]),
        'h.half': { dtype: 'F16', shape: [2], data: half },
        'h.bf16': { dtype: 'BF16', shape: [1], data: bf },
      },
      { ss_network_dim: '4', note: 'héllo' },
    );
    const header = await readSafetensorsHeader(file);
    expect([...header.tensors.keys()]).toEqual(['a.alpha', 'b.weight', 'h.bf16', 'h.half']);
    expect(header.metadata).toEqual({ ss_network_dim: '4', note: 'héllo' });
    expect(header.dataStart % 8).toBe(0);
    const b = header.tensors.get('b.weight')!;
    expect(b.shape).toEqual([2, 3]);
    expect([...toFloat32(b.dtype, await readTensorBytes(file, b))]).toEqual([1, 2, 3, 4, 5, 6]);
    const alpha = header.tensors.get('a.alpha')!;
    expect(alpha.shape).toEqual([]);
    expect([...toFloat32('F32', await readTensorBytes(file, alpha))]).toEqual([4]);
    expect([...toFloat32('F16', await readTensorBytes(file, header.tensors.get('h.half')!))]).toEqual([1, -2]);
    expect([...toFloat32('BF16', await readTensorBytes(file, header.tensors.get('h.bf16')!))]).toEqual([3]);
  });

  it('is deterministic and leaves no temp file behind', async () => {
    const a = join(dir, 'det-a.safetensors');
    const b = join(dir, 'det-b.safetensors');
    await writeSafetensors(a, { y: float32Tensor([1], [1]), x: float32Tensor([1], [2]) }, { k: 'v' });
    await writeSafetensors(b, { x: float32Tensor([1], [2]), y: float32Tensor([1], [1]) }, { k: 'v' });
    expect(await readFile(a)).toEqual(await readFile(b));
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses to write a tensor whose bytes do not match its shape, and writes nothing', async () => {
    const file = join(dir, 'bad-write.safetensors');
    await expect(writeSafetensors(file, { t: { dtype: 'F32', shape: [3], data: Buffer.alloc(8) } })).rejects.toThrow(/needs 12 bytes, got 8/);
    expect((await readdir(dir)).includes('bad-write.safetensors')).toBe(false);
  });
});

describe('safetensors header checks', () => {
  const ok = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };

  it('too short for the length prefix', async () => {
    const file = join(dir, 'short.safetensors');
    await writeFile(file, Buffer.from([1, 2, 3]));
    await expectRejects(file, /too short/);
  });
  it('header length past the end of the file', async () => {
    await expectRejects(await rawFile('trunc.safetensors', { t: ok }, Buffer.alloc(8), 5000n), /runs past the end of the file/);
  });
  it('header length that fits the file but not after the 8-byte prefix', async () => {
    // N <= file size < 8 + N: only a bound that counts the prefix refuses it
    const json = JSON.stringify({ t: ok });
    const size = 8 + json.length + 8;
    const claimed = BigInt(size - 4);
    await expectRejects(await rawFile('prefix.safetensors', { t: ok }, Buffer.alloc(8), claimed), new RegExp(`header length ${claimed} runs past the end of the file \\(${size} bytes\\)`));
  });
  it('header length above the limit', async () => {
    await expectRejects(await rawFile('huge.safetensors', {}, Buffer.alloc(0), 1n << 40n), /exceeds the .*limit/);
  });
  it('header that is not JSON', async () => {
    await expectRejects(await rawFile('notjson.safetensors', '{"t": [', Buffer.alloc(0)), /not valid JSON/);
  });
  it('header that is not an object', async () => {
    await expectRejects(await rawFile('array.safetensors', [1, 2]), /must be a JSON object/);
  });
  it('unknown dtype', async () => {
    await expectRejects(await rawFile('dtype.safetensors', { t: { ...ok, dtype: 'F128' } }, Buffer.alloc(8)), /tensor 't': unknown dtype "F128"/);
  });
  it('negative or fractional shape', async () => {
    await expectRejects(await rawFile('shape.safetensors', { t: { ...ok, shape: [-2] } }, Buffer.alloc(8)), /shape must be a list of non-negative integers/);
  });
  it('offsets that end before they begin', async () => {
    await expectRejects(await rawFile('order.safetensors', { t: { ...ok, data_offsets: [8, 0] } }, Buffer.alloc(8)), /end before they begin/);
  });
  it('offsets past the data section', async () => {
    await expectRejects(await rawFile('past.safetensors', { t: { ...ok, data_offsets: [0, 8] } }, Buffer.alloc(4)), /past the data section/);
  });
  it('byte count that does not match dtype x shape', async () => {
    await expectRejects(await rawFile('count.safetensors', { t: { ...ok, shape: [3] } }, Buffer.alloc(8)), /needs 12 bytes but data_offsets span 8/);
  });
  it('overlapping tensors', async () => {
    const header = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    await expectRejects(await rawFile('overlap.safetensors', header, Buffer.alloc(12)), /'a' and 'b' overlap/);
  });
  it('metadata with a non-string value', async () => {
    await expectRejects(await rawFile('meta.safetensors', { __metadata__: { steps: 100 }, t: ok }, Buffer.alloc(8)), /__metadata__\.steps must be a string/);
  });
  it('a missing file names the file', async () => {
    await expectRejects(join(dir, 'nope.safetensors'), /cannot open \(ENOENT\)/);
  });
});
