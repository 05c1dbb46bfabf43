// 32-bit non-cryptographic hashing for in-file tables and content-defined cuts: FNV-1a over UTF-16
// code units, finished with murmur3's fmix32 (FNV's low bits depend only on the low bits of each
// character, and tables and cuts use the low bits).

export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
