// LoRA files in every format people download, shaped for lorabuild's `builtin: tiny` model, with
// deterministic values, and the closed form of what each does to a weight (worked out here in
// float64, independently of the worker): tests write them, render with them and check the patched
// weights against these formulas.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { float32Tensor, writeSafetensors, type TensorData } from '../../src/safetensors/io.js';

/** tiny's modules (kohya name, weight shape) the fixtures target */
export const TINY = {
  linear: { kohya: 'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k', diffusers: 'down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k', shape: [64, 64] },
  conv3: { kohya: 'lora_unet_down_blocks_1_resnets_0_conv1', ldm: 'input_blocks_4_0_in_layers_2', shape: [64, 32, 3, 3] },
  conv3b: { kohya: 'lora_unet_down_blocks_1_resnets_0_conv2', shape: [64, 64, 3, 3] },
  proj: { kohya: 'lora_unet_down_blocks_0_attentions_0_proj_in', shape: [32, 32, 1, 1] },
  text: { kohya: 'lora_te_text_model_encoder_layers_1_mlp_fc1', path: 'text_model.encoder.layers.1.mlp.fc1', shape: [256, 64] },
  text2: { kohya: 'lora_te_text_model_encoder_layers_2_self_attn_q_proj', shape: [64, 64] },
} as const;

/** A matrix or tensor with its float32 values (what the file holds exactly). */
export interface T {
  shape: number[];
  v: Float32Array;
}

/** mulberry32: the same series of numbers in [0, 1) on every run */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomT(shape: number[], seed: number, scale = 0.5, offset = 0): T {
  const next = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, v: Float32Array.from({ length: n }, () => offset + (next() * 2 - 1) * scale) };
}

const scalar = (x: number): T => ({ shape: [], v: Float32Array.of(x) });
const data = (t: T): TensorData => float32Tensor(t.shape, t.v);

// ---- closed forms (float64) ----
type M = Float64Array;

function matmul(a: ArrayLike<number>, b: ArrayLike<number>, n: number, k: number, m: number): M {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let p = 0; p < k; p++) for (let j = 0; j < m; j++) out[i * m + j] += a[i * k + p] * b[p * m + j];
  return out;
}

function kron(a: ArrayLike<number>, [ar, ac]: number[], b: ArrayLike<number>, [br, bc, ...rest]: number[]): M {
  const inner = rest.reduce((x, y) => x * y, 1);
  const out = new Float64Array(ar * br * ac * bc * inner);
  const cols = ac * bc;
  for (let i = 0; i < ar; i++)
    for (let j = 0; j < ac; j++)
      for (let k = 0; k < br; k++)
        for (let l = 0; l < bc; l++)
          for (let s = 0; s < inner; s++) out[((i * br + k) * cols + (j * bc + l)) * inner + s] = a[i * ac + j] * b[(k * bc + l) * inner + s];
  return out;
}

/** t [a, b, h, w], wa [a, out], wb [b, in] -> [out, in, h, w] (LyCORIS' CP / Tucker rebuild) */
function tucker(t: T, wa: T, wb: T): M {
  const [ra, rb, h, w] = t.shape;
  const [out, inn] = [wa.shape[1], wb.shape[1]];
  const res = new Float64Array(out * inn * h * w);
  for (let o = 0; o < out; o++)
    for (let i = 0; i < inn; i++)
      for (let x = 0; x < h * w; x++) {
        let s = 0;
        for (let a = 0; a < ra; a++) for (let b = 0; b < rb; b++) s += t.v[(a * rb + b) * h * w + x] * wa.v[a * out + o] * wb.v[b * inn + i];
        res[(o * inn + i) * h * w + x] = s;
      }
  return res;
}

/** Patched weight W' for a plain difference: W + s * scale * dW */
function added(before: Float32Array, diff: M, strength: number, scale: number): Float64Array {
  return Float64Array.from(before, (w, i) => w + strength * scale * diff[i]);
}

/** DoRA as ComfyUI's weight_decompose: renormalise each input column of W + scale*dW to dora[j], then blend by s. */
function dora(before: Float32Array, shape: number[], diff: M, scale: number, doraScale: Float32Array, strength: number): Float64Array {
  const [out, inn] = shape;
  const per = before.length / (out * inn);
  const calc = Float64Array.from(before, (w, i) => w + scale * diff[i]);
  for (let j = 0; j < inn; j++) {
    let sq = 0;
    for (let o = 0; o < out; o++) for (let x = 0; x < per; x++) sq += calc[(o * inn + j) * per + x] ** 2;
    const factor = doraScale[j] / Math.sqrt(sq);
    for (let o = 0; o < out; o++) for (let x = 0; x < per; x++) calc[(o * inn + j) * per + x] *= factor;
  }
  return Float64Array.from(before, (w, i) => w + strength * (calc[i] - w));
}

/** What a fixture does to one module: its closed form given the original weight and the strength. */
export interface Expectation {
  target: string;
  shape: number[];
  patched(before: Float32Array, strength: number): Float64Array;
}

export interface Fixture {
  name: string;
  tensors: Record<string, T>;
  metadata?: Record<string, string>;
  expect: Expectation[];
}

const flatLen = (shape: readonly number[]) => shape.slice(1).reduce((a, b) => a * b, 1);

/** A kohya/LoCon pair on a module: up [out, r(,1,1)], down [r, in(,k,k)] */
function loraPair(prefix: string, target: { kohya: string; shape: readonly number[] }, rank: number, seed: number, opts: { alpha?: number; conv?: boolean; names?: [string, string] } = {}) {
  const [out] = target.shape;
  const conv = target.shape.length === 4 && opts.conv !== false;
  const up = randomT(conv ? [out, rank, 1, 1] : [out, rank], seed);
  const down = randomT(conv ? [rank, ...target.shape.slice(1)] : [rank, flatLen(target.shape)], seed + 1);
  const [upName, downName] = opts.names ?? ['.lora_up.weight', '.lora_down.weight'];
  const tensors: Record<string, T> = { [`${prefix}${upName}`]: up, [`${prefix}${downName}`]: down };
  if (opts.alpha !== undefined) tensors[`${prefix}.alpha`] = scalar(opts.alpha);
  const scale = opts.alpha !== undefined ? opts.alpha / rank : 1;
  const diff = () => matmul(up.v, down.v, out, rank, flatLen(target.shape));
  return { tensors, up, down, diff, scale };
}

export function fixtures(): Fixture[] {
  const all: Fixture[] = [];
  const plain = (name: string, pairs: ReturnType<typeof loraPair>[], targets: { kohya: string; shape: readonly number[] }[], metadata?: Record<string, string>) => {
    all.push({
      name,
      metadata,
      tensors: Object.assign({}, ...pairs.map((p) => p.tensors)),
      expect: pairs.map((p, i) => ({ target: targets[i].kohya, shape: [...targets[i].shape], patched: (before: Float32Array, s: number) => added(before, p.diff(), s, p.scale) })),
    });
  };

  // kohya LoRA with alpha (a linear and a 1x1 conv stored 4-D) and the same without alpha (SimpleLoRA's output)
  plain('kohya-alpha', [loraPair(TINY.linear.kohya, TINY.linear, 4, 10, { alpha: 2 }), loraPair(TINY.proj.kohya, TINY.proj, 4, 20, { alpha: 8 })], [TINY.linear, TINY.proj]);
  plain('kohya-no-alpha', [loraPair(TINY.linear.kohya, TINY.linear, 4, 30)], [TINY.linear], { ss_network_module: 'networks.lora', 'modelspec.trigger_phrase': 'retro80' });

  // LoCon: a 3x3 conv (ComfyUI's LDM spelling of its name) and one with a Tucker mid
  {
    const a = loraPair(`lora_unet_${TINY.conv3.ldm}`, TINY.conv3, 4, 40, { alpha: 2 });
    const rank = 3;
    const up = randomT([64, rank, 1, 1], 50);
    const mid = randomT([rank, rank, 3, 3], 51);
    const down = randomT([rank, 64, 1, 1], 52);
    const midDiff = (): M => {
      const res = new Float64Array(64 * 64 * 9);
      for (let o = 0; o < 64; o++)
        for (let i = 0; i < 64; i++)
          for (let x = 0; x < 9; x++) {
            let s = 0;
            for (let p = 0; p < rank; p++) for (let q = 0; q < rank; q++) s += up.v[o * rank + p] * mid.v[(p * rank + q) * 9 + x] * down.v[q * 64 + i];
            res[(o * 64 + i) * 9 + x] = s;
          }
      return res;
    };
    const b = TINY.conv3b.kohya;
    all.push({
      name: 'locon',
      tensors: { ...a.tensors, [`${b}.lora_up.weight`]: up, [`${b}.lora_mid.weight`]: mid, [`${b}.lora_down.weight`]: down, [`${b}.alpha`]: scalar(1.5) },
      expect: [
        { target: TINY.conv3.kohya, shape: [...TINY.conv3.shape], patched: (w, s) => added(w, a.diff(), s, a.scale) },
        { target: b, shape: [...TINY.conv3b.shape], patched: (w, s) => added(w, midDiff(), s, 1.5 / rank) },
      ],
    });
  }

  // LoHa on a linear, and in CP (Tucker) form on a 3x3 conv
  {
    const p = TINY.linear.kohya;
    const [w1a, w1b, w2a, w2b] = [randomT([64, 4], 60), randomT([4, 64], 61), randomT([64, 4], 62), randomT([4, 64], 63)];
    const c = TINY.conv3.kohya;
    const [t1, a1, b1, t2, a2, b2] = [randomT([2, 2, 3, 3], 64), randomT([2, 64], 65), randomT([2, 32], 66), randomT([2, 2, 3, 3], 67), randomT([2, 64], 68), randomT([2, 32], 69)];
    all.push({
      name: 'loha',
      tensors: {
        [`${p}.hada_w1_a`]: w1a, [`${p}.hada_w1_b`]: w1b, [`${p}.hada_w2_a`]: w2a, [`${p}.hada_w2_b`]: w2b, [`${p}.alpha`]: scalar(8),
        [`${c}.hada_w1_a`]: a1, [`${c}.hada_w1_b`]: b1, [`${c}.hada_w2_a`]: a2, [`${c}.hada_w2_b`]: b2, [`${c}.hada_t1`]: t1, [`${c}.hada_t2`]: t2,
      },
      expect: [
        { target: p, shape: [64, 64], patched: (w, s) => { const m1 = matmul(w1a.v, w1b.v, 64, 4, 64); const m2 = matmul(w2a.v, w2b.v, 64, 4, 64); return added(w, m1.map((x, i) => x * m2[i]), s, 8 / 4); } },
        { target: c, shape: [...TINY.conv3.shape], patched: (w, s) => { const m1 = tucker(t1, a1, b1); const m2 = tucker(t2, a2, b2); return added(w, m1.map((x, i) => x * m2[i]), s, 1); } },
      ],
    });
  }

  // LoKr: full w1 and factorised w2 (its rank scales the alpha); both factorised (w2's rank, 2, not w1's, 3, scales it)
  {
    const p = TINY.linear.kohya;
    const [w1, w2a, w2b] = [randomT([8, 8], 70), randomT([8, 2], 71), randomT([2, 8], 72)];
    const q = TINY.text2.kohya;
    const [a1, b1, a2, b2] = [randomT([8, 3], 73), randomT([3, 8], 74), randomT([8, 2], 75), randomT([2, 8], 76)];
    all.push({
      name: 'lokr',
      tensors: {
        [`${p}.lokr_w1`]: w1, [`${p}.lokr_w2_a`]: w2a, [`${p}.lokr_w2_b`]: w2b, [`${p}.alpha`]: scalar(1),
        [`${q}.lokr_w1_a`]: a1, [`${q}.lokr_w1_b`]: b1, [`${q}.lokr_w2_a`]: a2, [`${q}.lokr_w2_b`]: b2, [`${q}.alpha`]: scalar(4),
      },
      expect: [
        { target: p, shape: [64, 64], patched: (w, s) => added(w, kron(w1.v, [8, 8], matmul(w2a.v, w2b.v, 8, 2, 8), [8, 8]), s, 1 / 2) },
        { target: q, shape: [64, 64], patched: (w, s) => added(w, kron(matmul(a1.v, b1.v, 8, 3, 8), [8, 8], matmul(a2.v, b2.v, 8, 2, 8), [8, 8]), s, 4 / 2) },
      ],
    });
  }

  // DoRA: a kohya pair with dora_scale [1, in]
  {
    const pair = loraPair(TINY.linear.kohya, TINY.linear, 4, 80, { alpha: 4 });
    const scale = randomT([1, 64], 81, 0.3, 1.0);
    all.push({
      name: 'dora',
      tensors: { ...pair.tensors, [`${TINY.linear.kohya}.dora_scale`]: scale },
      expect: [{ target: TINY.linear.kohya, shape: [64, 64], patched: (w, s) => dora(w, [64, 64], pair.diff(), pair.scale, scale.v, s) }],
    });
  }

  // diffusers >= 0.24 / PEFT naming (lora_A / lora_B, no alpha), UNet and text encoder
  plain(
    'peft',
    [
      loraPair(`unet.${TINY.linear.diffusers}`, TINY.linear, 4, 90, { names: ['.lora_B.weight', '.lora_A.weight'] }),
      loraPair(`text_encoder.${TINY.text.path}`, TINY.text, 4, 91, { names: ['.lora_B.weight', '.lora_A.weight'] }),
    ],
    [TINY.linear, TINY.text],
  );
  // older diffusers attention processors: unet.…attn2.processor.to_k_lora.up.weight
  plain('diffusers-processor', [loraPair(`unet.${TINY.linear.diffusers.replace('.to_k', '.processor.to_k')}`, TINY.linear, 4, 100, { names: ['_lora.up.weight', '_lora.down.weight'] })], [TINY.linear]);
  // text encoder only, A1111's lora_te_text_model spelling and the old lora_te_transformer one
  plain(
    'text-encoder',
    [loraPair(TINY.text.kohya, TINY.text, 4, 110, { alpha: 4 }), loraPair(TINY.text2.kohya.replace('lora_te_', 'lora_te_transformer_'), TINY.text2, 4, 111, { alpha: 4 })],
    [TINY.text, TINY.text2],
  );
  return all;
}

export async function writeFixture(file: string, fixture: Pick<Fixture, 'tensors' | 'metadata'>): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  await writeSafetensors(file, Object.fromEntries(Object.entries(fixture.tensors).map(([k, t]) => [k, data(t)])), fixture.metadata ?? {});
}

/** Zero tensors with the keys and shapes of a real file of another family (values do not matter for the check). */
export function zeros(shape: number[]): T {
  return { shape, v: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
}
