// LZ4 for parquet pages, written for lorabuild instead of hyparquet-compressors' (1.1.2), which
// rejects the valid empty block (a single 0 token) that an all-null column's pages hold ("lz4
// offset out of range 0") and does no bounds checks on hostile input. Every read and write is
// checked; a bad block is an Lz4Error that says what is wrong.
//   LZ4_RAW: one LZ4 block (https://github.com/lz4/lz4/blob/dev/doc/lz4_Block_format.md)
//   LZ4:     Hadoop framing (big-endian decompressed size + compressed size, then a block,
//            repeated), else one raw block, as Arrow reads the deprecated codec.

export class Lz4Error extends Error {
  override name = 'Lz4Error';
}

/** Decodes one LZ4 block from input into output starting at `at`; returns the bytes written. */
export function decodeLz4Block(input: Uint8Array, output: Uint8Array, at = 0): number {
  let i = 0;
  let o = at;
  const byte = (): number => {
    if (i >= input.length) throw new Lz4Error('the block ends in the middle of a sequence');
    return input[i++];
  };
  const extend = (length: number): number => {
    if (length !== 15) return length;
    let next;
    do {
      next = byte();
      length += next;
    } while (next === 255);
    return length;
  };
  while (i < input.length) {
    const token = byte();
    const literals = extend(token >> 4);
    if (i + literals > input.length) throw new Lz4Error(`${literals} literal bytes run past the end of the block`);
    if (o + literals > output.length) throw new Lz4Error(`the block decodes to more than the ${output.length - at} bytes announced`);
    output.set(input.subarray(i, i + literals), o);
    i += literals;
    o += literals;
    if (i === input.length) break; // the last sequence has literals only (an empty block is one 0 token)
    const offset = byte() | (byte() << 8);
    if (offset === 0) throw new Lz4Error('a match has offset 0, which LZ4 does not allow');
    if (offset > o - at) throw new Lz4Error(`a match points ${offset} bytes back, before the start of the data`);
    const length = extend(token & 0x0f) + 4;
    if (o + length > output.length) throw new Lz4Error(`the block decodes to more than the ${output.length - at} bytes announced`);
    for (let from = o - offset, end = o + length; o < end; ) output[o++] = output[from++];
  }
  return o - at;
}

export function decompressLz4Raw(input: Uint8Array, outputLength: number): Uint8Array {
  const output = new Uint8Array(outputLength);
  const written = decodeLz4Block(input, output);
  if (written !== outputLength) throw new Lz4Error(`the block decodes to ${written} bytes, ${outputLength} announced`);
  return output;
}

/** Hadoop-framed blocks, if the input is exactly a sequence of them; else undefined. */
function hadoopFrames(input: Uint8Array, outputLength: number): Uint8Array | undefined {
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const output = new Uint8Array(outputLength);
  let i = 0;
  let o = 0;
  while (i < input.length) {
    if (input.length - i < 8) return undefined;
    const size = view.getUint32(i);
    const compressed = view.getUint32(i + 4);
    i += 8;
    if (compressed > input.length - i || size > outputLength - o) return undefined;
    try {
      if (decodeLz4Block(input.subarray(i, i + compressed), output.subarray(0, o + size), o) !== size) return undefined;
    } catch {
      return undefined;
    }
    i += compressed;
    o += size;
  }
  return o === outputLength ? output : undefined;
}

export function decompressLz4(input: Uint8Array, outputLength: number): Uint8Array {
  return hadoopFrames(input, outputLength) ?? decompressLz4Raw(input, outputLength);
}
