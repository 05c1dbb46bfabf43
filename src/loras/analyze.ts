// Everything lorabuild needs to know about a LoRA file before applying it, from its header and a
// few scalar tensors (the alphas): family, key style, adapter kinds, ranks, alphas, the modules it
// targets on an SD1 architecture and the keys that fit nothing, and its trigger words.
import { readSafetensorsHeader, readTensorsBytes, toFloat32 } from '../safetensors/io.js';
import type { SafetensorsHeader, TensorInfo } from '../safetensors/format.js';
import type { ModuleGroup, Sd1Arch } from '../safetensors/sd15.js';
import { detectFamily, type FamilyGuess } from './family.js';
import { bindKeys, groupKeys, rankOf, type Binding, type GroupedKeys } from './keys.js';
import { archModules, type KeyStyle } from './spellings.js';
import { triggerWords } from './triggers.js';

const FLOAT_DTYPES = new Set(['F16', 'BF16', 'F32', 'F64']);

export type AdapterLabel = 'LoRA' | 'LoCon' | 'LoHa' | 'LoKr' | 'DoRA';

export interface LoraAnalysis {
  file: string;
  /** every tensor name in the file */
  keys: string[];
  metadata: Record<string, string>;
  family: FamilyGuess;
  /** the SD1 architecture the keys were bound to */
  arch: Sd1Arch;
  binding: Binding;
  /** module prefix -> alpha, for bound modules that have one */
  alphas: Map<string, number>;
  /** how many adapter modules the file holds (bound or not) */
  moduleCount: number;
  style: KeyStyle | 'mixed';
  kinds: AdapterLabel[];
  ranks: number[];
  /** distinct alphas; empty = no alpha anywhere (scale 1) */
  alphaValues: number[];
  targets: Partial<Record<ModuleGroup, number>>;
  triggers: string[];
}

/** Whether a header holds adapter tensors at all (else it is a checkpoint or something else). */
export function isLoraHeader(grouped: GroupedKeys): boolean {
  return [...grouped.groups.values()].some((g) => g.family !== null);
}

const sortNum = (xs: Iterable<number>) => [...new Set(xs)].sort((a, b) => a - b);

function bestArch(grouped: GroupedKeys, family: FamilyGuess): Sd1Arch {
  if (family.arch) return family.arch;
  const misfits = (arch: Sd1Arch) => {
    const b = bindKeys(grouped, archModules(arch));
    return b.problems.length * 1000 + b.unknownKeys.length;
  };
  const order: Sd1Arch[] = ['sd15', 'tiny', 'toy'];
  return order.reduce((best, arch) => (misfits(arch) < misfits(best) ? arch : best));
}

/**
 * Analyses a LoRA file (null when the file holds no adapter tensors). `arch`: bind to this SD1
 * architecture (the model's); default: the one the file fits.
 */
export async function analyzeLoraFile(file: string, arch?: Sd1Arch, header?: SafetensorsHeader): Promise<LoraAnalysis | null> {
  const h = header ?? (await readSafetensorsHeader(file));
  const grouped = groupKeys(h);
  if (!isLoraHeader(grouped)) return null;
  const family = detectFamily(h);
  const bindTo = arch ?? bestArch(grouped, family);
  const binding = bindKeys(grouped, archModules(bindTo));

  // ranks, alphas and kinds describe the whole file, also what does not bind (an SDXL LoRA on SD1)
  const adapters = [...grouped.groups.values()].filter((g) => g.family !== null);
  // an alpha is one number; anything bigger is not read (a hostile header could name gigabytes)
  const isScalar = (t: TensorInfo) => t.shape.reduce((a, b) => a * b, 1) === 1 && FLOAT_DTYPES.has(t.dtype);
  const alphaTensors = adapters.flatMap((g) => (g.tensors.alpha ? [[g.prefix, g.tensors.alpha] as const] : []));
  for (const [prefix, tensor] of alphaTensors) {
    if (!isScalar(tensor) && binding.modules.some((m) => m.prefix === prefix)) binding.problems.push({ prefix, problem: `alpha is ${tensor.dtype}${JSON.stringify(tensor.shape)}, not one float` });
  }
  const scalars = alphaTensors.filter(([, t]) => isScalar(t));
  const alphas = new Map<string, number>();
  const bytes = await readTensorsBytes(file, scalars.map(([, t]) => t));
  scalars.forEach(([prefix, tensor], i) => alphas.set(prefix, toFloat32(tensor.dtype, bytes[i])[0]));

  const kinds = new Set<AdapterLabel>();
  for (const g of adapters) {
    const down = g.tensors.down?.shape;
    const conv = down !== undefined && down.length === 4 && (down[2] > 1 || g.tensors.mid !== undefined);
    kinds.add(g.family === 'loha' ? 'LoHa' : g.family === 'lokr' ? 'LoKr' : conv ? 'LoCon' : 'LoRA');
    if (g.tensors.dora_scale) kinds.add('DoRA');
  }
  const targets: Partial<Record<ModuleGroup, number>> = {};
  for (const m of binding.modules) targets[m.module.group] = (targets[m.module.group] ?? 0) + 1;
  const styles = new Set(binding.modules.map((m) => m.style));
  return {
    file,
    keys: [...h.tensors.keys()],
    metadata: h.metadata,
    family,
    arch: bindTo,
    binding,
    alphas,
    moduleCount: adapters.length,
    style: styles.size === 1 ? [...styles][0] : styles.size === 0 ? 'kohya' : 'mixed',
    kinds: (['LoRA', 'LoCon', 'LoHa', 'LoKr', 'DoRA'] as const).filter((k) => kinds.has(k)),
    ranks: sortNum(adapters.flatMap((g) => (rankOf(g.family!, g.tensors) ?? []))),
    alphaValues: sortNum(alphas.values()),
    targets,
    triggers: triggerWords(h.metadata),
  };
}
