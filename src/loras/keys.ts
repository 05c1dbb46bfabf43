// A LoRA file's tensor names, split into module prefix + role, and bound to the modules of an SD1
// architecture: which adapter (LoRA/LoCon, LoHa, LoKr, with DoRA), which tensors, whether the shapes
// fit the module's weight, and which keys match nothing. The roles are the ones ComfyUI's
// weight_adapter classes read; the shape rules are what their arithmetic needs.
import type { SafetensorsHeader, TensorInfo } from '../safetensors/format.js';
import type { LoraModule } from '../safetensors/sd15.js';
import type { ArchModules, KeyStyle } from './spellings.js';

export type Role = 'up' | 'down' | 'mid' | 'alpha' | 'dora_scale' | 'w1a' | 'w1b' | 'w2a' | 'w2b' | 't1' | 't2' | 'w1' | 'w2';
export type AdapterKind = 'lora' | 'loha' | 'lokr';

/** Key endings and the role they give; the rest of the key is the module prefix. First match wins. */
const SUFFIXES: [string, Role][] = [
  ['.lora_up.weight', 'up'],
  ['.lora_down.weight', 'down'],
  ['.lora_mid.weight', 'mid'],
  ['_lora.up.weight', 'up'], // diffusers attention processors: ...processor.to_q_lora.up.weight
  ['_lora.down.weight', 'down'],
  ['.lora_B.default.weight', 'up'],
  ['.lora_A.default.weight', 'down'],
  ['.lora_B.weight', 'up'],
  ['.lora_A.weight', 'down'],
  ['.lora.up.weight', 'up'],
  ['.lora.down.weight', 'down'],
  ['.lora_linear_layer.up.weight', 'up'],
  ['.lora_linear_layer.down.weight', 'down'],
  ['.alpha', 'alpha'],
  ['.dora_scale', 'dora_scale'],
  ['.hada_w1_a', 'w1a'],
  ['.hada_w1_b', 'w1b'],
  ['.hada_w2_a', 'w2a'],
  ['.hada_w2_b', 'w2b'],
  ['.hada_t1', 't1'],
  ['.hada_t2', 't2'],
  ['.lokr_w1_a', 'w1a'],
  ['.lokr_w1_b', 'w1b'],
  ['.lokr_w2_a', 'w2a'],
  ['.lokr_w2_b', 'w2b'],
  ['.lokr_w1', 'w1'],
  ['.lokr_w2', 'w2'],
  ['.lokr_t2', 't2'],
];

export interface KeyGroup {
  prefix: string;
  /** the family of the role names used: hada_* is LoHa, lokr_* is LoKr, the rest LoRA */
  family: 'lora' | 'loha' | 'lokr' | null;
  tensors: Partial<Record<Role, TensorInfo>>;
  /** two tensors for one role (e.g. lora_up and lora_B under one prefix) */
  clashes: string[];
}

export interface GroupedKeys {
  groups: Map<string, KeyGroup>;
  /** tensors whose name ends in no known role */
  unrecognized: string[];
}

function familyOf(suffix: string): KeyGroup['family'] {
  if (suffix.startsWith('.hada_')) return 'loha';
  if (suffix.startsWith('.lokr_')) return 'lokr';
  return suffix === '.alpha' || suffix === '.dora_scale' ? null : 'lora';
}

export function groupKeys(header: SafetensorsHeader): GroupedKeys {
  const groups = new Map<string, KeyGroup>();
  const unrecognized: string[] = [];
  for (const tensor of header.tensors.values()) {
    const match = SUFFIXES.find(([suffix]) => tensor.name.endsWith(suffix) && tensor.name.length > suffix.length);
    if (!match) {
      unrecognized.push(tensor.name);
      continue;
    }
    const [suffix, role] = match;
    const prefix = tensor.name.slice(0, -suffix.length);
    let group = groups.get(prefix);
    if (!group) groups.set(prefix, (group = { prefix, family: null, tensors: {}, clashes: [] }));
    const family = familyOf(suffix);
    if (family && group.family && family !== group.family) group.clashes.push(tensor.name);
    else if (group.tensors[role]) group.clashes.push(tensor.name);
    else {
      group.tensors[role] = tensor;
      group.family ??= family;
    }
  }
  return { groups, unrecognized: unrecognized.sort() };
}

/** A module of the model and the adapter a file holds for it. */
export interface BoundModule {
  prefix: string;
  module: LoraModule;
  style: KeyStyle;
  kind: AdapterKind;
  tensors: Partial<Record<Role, TensorInfo>>;
  /** the rank its alpha divides by (ComfyUI's choice per kind); null = no scale (a LoKr of two full factors) */
  rank: number | null;
}

export interface Binding {
  modules: BoundModule[];
  /** keys that match no module of the architecture (or no role) */
  unknownKeys: string[];
  /** the same, one per module: the prefixes of unknown modules, and keys with no known role as they are */
  unknownModules: string[];
  /** known modules whose tensors do not fit: prefix and what is wrong */
  problems: { prefix: string; problem: string }[];
}

const REQUIRED: Record<AdapterKind, Role[]> = { lora: ['up', 'down'], loha: ['w1a', 'w1b', 'w2a', 'w2b'], lokr: [] };
const ALLOWED: Record<AdapterKind, Role[]> = {
  lora: ['up', 'down', 'mid', 'alpha', 'dora_scale'],
  loha: ['w1a', 'w1b', 'w2a', 'w2b', 't1', 't2', 'alpha', 'dora_scale'],
  lokr: ['w1', 'w2', 'w1a', 'w1b', 'w2a', 'w2b', 't2', 'alpha', 'dora_scale'],
};

const fmt = (s: number[]) => `[${s.join(', ')}]`;
const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** The shape the adapter's difference has before ComfyUI reshapes it to the weight, or a problem. */
function differenceShape(kind: AdapterKind, t: Partial<Record<Role, TensorInfo>>): number[] | string {
  const s = (r: Role) => t[r]!.shape;
  if (kind === 'lora') {
    const up = s('up');
    const down = s('down');
    if (up.length < 2 || down.length < 2) return `lora_up ${fmt(up)} / lora_down ${fmt(down)} are not matrices`;
    let inner = down;
    if (t.mid) {
      const mid = s('mid');
      if (mid.length !== 4 || mid[0] !== down[0] || mid[1] !== down[0]) return `lora_mid ${fmt(mid)} does not fit lora_down ${fmt(down)}`;
      inner = [down[0], down[1], mid[2], mid[3]];
    }
    if (prod(up.slice(1)) !== inner[0]) return `lora_up ${fmt(up)} does not fit lora_down ${fmt(down)} (rank ${inner[0]})`;
    return [up[0], ...inner.slice(1)];
  }
  if (kind === 'loha') {
    const factor = (a: Role, b: Role, tucker: Role): number[] | string => {
      const [wa, wb] = [s(a), s(b)];
      if (t[tucker]) {
        const core = s(tucker);
        if (core.length !== 4 || wa.length !== 2 || wb.length !== 2 || core[0] !== wa[0] || core[1] !== wb[0]) return `hada ${tucker} ${fmt(core)} does not fit ${fmt(wa)} / ${fmt(wb)}`;
        return [wa[1], wb[1], core[2], core[3]];
      }
      if (wa.length !== 2 || wb.length !== 2 || wa[1] !== wb[0]) return `hada factors ${fmt(wa)} @ ${fmt(wb)} do not multiply`;
      return [wa[0], wb[1]];
    };
    if (Boolean(t.t1) !== Boolean(t.t2)) return 'hada_t1 and hada_t2 come together';
    const m1 = factor('w1a', 'w1b', 't1');
    const m2 = factor('w2a', 'w2b', 't2');
    if (typeof m1 === 'string') return m1;
    if (typeof m2 === 'string') return m2;
    if (fmt(m1) !== fmt(m2)) return `the two hada products differ in shape (${fmt(m1)} vs ${fmt(m2)})`;
    return m1;
  }
  const factor = (full: Role, a: Role, b: Role, tucker: Role | null): number[] | string => {
    if (t[full]) return s(full);
    if (!t[a] || !t[b]) return `needs lokr_${full} or both lokr_${full}_a and lokr_${full}_b`;
    const [wa, wb] = [s(a), s(b)];
    if (wa.length !== 2 || wb.length !== 2) return `lokr factors ${fmt(wa)} / ${fmt(wb)} are not matrices`;
    if (tucker && t[tucker]) {
      const core = s(tucker);
      if (core.length !== 4 || core[0] !== wa[0] || core[1] !== wb[0]) return `lokr_t2 ${fmt(core)} does not fit ${fmt(wa)} / ${fmt(wb)}`;
      return [wa[1], wb[1], core[2], core[3]];
    }
    if (wa[1] !== wb[0]) return `lokr factors ${fmt(wa)} @ ${fmt(wb)} do not multiply`;
    return [wa[0], wb[1]];
  };
  const w1 = factor('w1', 'w1a', 'w1b', null);
  const w2 = factor('w2', 'w2a', 'w2b', 't2');
  if (typeof w1 === 'string') return w1;
  if (typeof w2 === 'string') return w2;
  const a = w2.length === 4 && w1.length === 2 ? [...w1, 1, 1] : w1;
  const n = Math.max(a.length, w2.length);
  const pad = (x: number[]) => [...Array(n - x.length).fill(1), ...x];
  return pad(a).map((d, i) => d * pad(w2)[i]); // torch.kron's shape
}

export function rankOf(kind: AdapterKind, t: Partial<Record<Role, TensorInfo>>): number | null {
  if (kind === 'lora') return t.down?.shape[0] ?? null;
  if (kind === 'loha') return t.w1b?.shape[0] ?? null;
  // ComfyUI: the rank of the factorised factor, w2's when both are
  if (!t.w2 && t.w2b) return t.w2b.shape[0];
  if (!t.w1 && t.w1b) return t.w1b.shape[0];
  return null;
}

/** Whether dora_scale / (the per-input-column norm, shaped [1, in, 1, ...]) broadcasts onto the weight in place. */
function broadcastsToWeight(dora: number[], weight: number[]): boolean {
  if (dora.length > weight.length) return false;
  return weight.every((w, j) => {
    const d = dora[j - (weight.length - dora.length)] ?? 1;
    const n = j === 1 ? w : 1;
    if (d !== 1 && n !== 1 && d !== n) return false;
    const combined = Math.max(d, n);
    return combined === 1 || combined === w;
  });
}

function fitProblem(kind: AdapterKind, t: Partial<Record<Role, TensorInfo>>, weight: number[]): string | null {
  const diff = differenceShape(kind, t);
  if (typeof diff === 'string') return diff;
  // ComfyUI reshapes the difference to the weight: the element counts must agree, and so must the outputs
  if (diff[0] !== weight[0] || prod(diff) !== prod(weight)) return `gives a ${fmt(diff)} difference for a ${fmt(weight)} weight`;
  if (t.dora_scale && !broadcastsToWeight(t.dora_scale.shape, weight)) return `dora_scale ${fmt(t.dora_scale.shape)} does not broadcast to the ${fmt(weight)} weight`;
  return null;
}

/** Binds grouped keys to an architecture's modules. */
export function bindKeys(grouped: GroupedKeys, arch: ArchModules): Binding {
  const modules: BoundModule[] = [];
  const unknownKeys = [...grouped.unrecognized];
  const unknownModules = [...grouped.unrecognized];
  const problems: Binding['problems'] = [];
  const bound = new Map<string, string>(); // module -> prefix that bound it
  for (const group of grouped.groups.values()) {
    const names = Object.values(group.tensors).map((t) => t!.name);
    const spelled = arch.bySpelling.get(group.prefix);
    if (!spelled) {
      unknownKeys.push(...names, ...group.clashes);
      unknownModules.push(group.prefix);
      continue;
    }
    const module = spelled.module;
    if (group.clashes.length) {
      problems.push({ prefix: group.prefix, problem: `has two tensors for one role or mixes adapter kinds (${group.clashes.join(', ')})` });
      continue;
    }
    if (group.family === null) continue; // only alpha / dora_scale: nothing to apply (ComfyUI skips it too)
    const kind: AdapterKind = group.family;
    const roles = Object.keys(group.tensors) as Role[];
    const missing = REQUIRED[kind].filter((r) => !group.tensors[r]);
    const extra = roles.filter((r) => !ALLOWED[kind].includes(r));
    if (missing.length || extra.length) {
      problems.push({ prefix: group.prefix, problem: `${missing.length ? `lacks ${missing.join(', ')}` : ''}${missing.length && extra.length ? '; ' : ''}${extra.length ? `has ${extra.join(', ')}, which a ${kind} module does not use` : ''}` });
      continue;
    }
    const before = bound.get(module.kohya);
    if (before !== undefined) {
      problems.push({ prefix: group.prefix, problem: `targets ${module.kohya}, which ${before} already targets` });
      continue;
    }
    const problem = fitProblem(kind, group.tensors, module.shape);
    if (problem) {
      problems.push({ prefix: group.prefix, problem });
      continue;
    }
    bound.set(module.kohya, group.prefix);
    modules.push({ prefix: group.prefix, module, style: spelled.style, kind, tensors: group.tensors, rank: rankOf(kind, group.tensors) });
  }
  return { modules, unknownKeys: unknownKeys.sort(), unknownModules: unknownModules.sort(), problems };
}
