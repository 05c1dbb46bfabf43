// Reading and writing .safetensors files. Reading the header touches only the first bytes of the
// file (checkpoints are gigabytes); tensors are read one at a time by their checked byte range.
import { open, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { DTYPE_BYTES, SafetensorsError, encodeHeader, parseHeader, parseHeaderLength, type Dtype, type SafetensorsHeader, type TensorInfo } from './format.js';

export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw new SafetensorsError(file, `cannot open (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    const { size } = await handle.stat();
    const prefix = Buffer.alloc(8);
    await handle.read(prefix, 0, Math.min(8, size), 0);
    const length = parseHeaderLength(prefix, size, file);
    const json = Buffer.alloc(length);
    await handle.read(json, 0, length, 8);
    return parseHeader(json, size, file);
  } finally {
    await handle.close();
  }
}

/** The raw little-endian bytes of one tensor. */
export async function readTensorBytes(file: string, tensor: TensorInfo): Promise<Buffer> {
  return (await readTensorsBytes(file, [tensor]))[0];
}

/** The raw bytes of several (small) tensors of one file, read through one open handle. */
export async function readTensorsBytes(file: string, tensors: TensorInfo[]): Promise<Buffer[]> {
  const handle = await open(file, 'r');
  try {
    return await Promise.all(
      tensors.map(async (tensor) => {
        const data = Buffer.alloc(tensor.end - tensor.begin);
        const { bytesRead } = await handle.read(data, 0, data.length, tensor.begin);
        if (bytesRead !== data.length) throw new SafetensorsError(file, `tensor '${tensor.name}': file ended while reading`);
        return data;
      }),
    );
  } finally {
    await handle.close();
  }
}

/** Decodes float tensors (F32, F16, BF16, F64) to numbers. */
export function toFloat32(dtype: Dtype, data: Buffer): Float32Array {
  const n = data.length / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case 'F32':
        out[i] = data.readFloatLE(i * 4);
        break;
      case 'F64':
        out[i] = data.readDoubleLE(i * 8);
        break;
      case 'F16':
        out[i] = halfToFloat(data.readUInt16LE(i * 2));
        break;
      case 'BF16': {
        const scratch = Buffer.alloc(4);
        scratch.writeUInt32LE(data.readUInt16LE(i * 2) << 16 >>> 0, 0);
        out[i] = scratch.readFloatLE(0);
        break;
      }
      default:
        throw new Error(`toFloat32: ${dtype} is not a float dtype`);
    }
  }
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

export interface TensorData {
  dtype: Dtype;
  shape: number[];
  data: Buffer;
}

/**
 * Writes a safetensors file atomically: a temp file next to the target, fsync, rename. Tensors are
 * stored in sorted name order so the same tensors always give the same bytes.
 */
export async function writeSafetensors(file: string, tensors: Record<string, TensorData>, metadata: Record<string, string> = {}): Promise<void> {
  const names = Object.keys(tensors).sort();
  const entries = names.map((name) => {
    const t = tensors[name];
    const expected = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (expected !== t.data.length) {
      throw new SafetensorsError(file, `tensor '${name}': ${t.dtype}${JSON.stringify(t.shape)} needs ${expected} bytes, got ${t.data.length}`);
    }
    return { name, dtype: t.dtype, shape: t.shape, size: t.data.length };
  });
  const { header } = encodeHeader(entries, metadata);
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(temp, 'wx');
  try {
    await handle.write(header);
    for (const name of names) await handle.write(tensors[name].data);
    await handle.sync();
    await handle.close();
    await rename(temp, file);
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw err;
  }
}

export function float32Tensor(shape: number[], values: ArrayLike<number>): TensorData {
  const data = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) data.writeFloatLE(values[i], i * 4);
  return { dtype: 'F32', shape, data };
}
