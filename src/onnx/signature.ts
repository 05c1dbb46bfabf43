// Checks that an ONNX model has the inputs and outputs a pipeline expects, and says what it has
// when it does not (names, element types, shapes), so a wrong export fails before any inference.
import type { InferenceSession } from 'onnxruntime-node';

export class OnnxModelError extends Error {}

export interface ExpectedTensor {
  /** accepted names; the first is used in messages */
  names: string[];
  type: string;
  /** fixed dims; null = any (batch, sequence) */
  shape: (number | null)[];
}

interface ValueMeta {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: (number | string)[];
}

function describe(values: readonly ValueMeta[]): string {
  return values.map((v) => `${v.name}: ${v.type ?? '?'}[${(v.shape ?? []).map((d) => (typeof d === 'number' && d >= 0 ? d : '?')).join(', ')}]`).join('; ');
}

function matches(meta: ValueMeta, expected: ExpectedTensor): boolean {
  if (!meta.isTensor || meta.type !== expected.type) return false;
  const shape = meta.shape ?? [];
  if (shape.length !== expected.shape.length) return false;
  return expected.shape.every((dim, i) => dim === null || typeof shape[i] !== 'number' || shape[i] === dim || (shape[i] as number) < 0);
}

/** Returns the actual input/output names to feed and read, or throws naming what the model has. */
export function checkSignature(
  session: InferenceSession,
  model: string,
  what: string,
  inputs: ExpectedTensor[],
  outputs: ExpectedTensor[],
): { inputs: string[]; outputs: string[] } {
  const inMeta = session.inputMetadata as unknown as readonly ValueMeta[];
  const outMeta = session.outputMetadata as unknown as readonly ValueMeta[];
  const pick = (metas: readonly ValueMeta[], expected: ExpectedTensor, kind: string): string => {
    const byName = metas.find((m) => expected.names.includes(m.name) && matches(m, expected));
    const fallback = metas.length === 1 && matches(metas[0], expected) ? metas[0] : undefined;
    const found = byName ?? fallback;
    if (!found) {
      const want = `${expected.names[0]}: ${expected.type}[${expected.shape.map((d) => d ?? 'N').join(', ')}]`;
      throw new OnnxModelError(
        `${model} is not a ${what}: expected ${kind} ${want}, but the model has ${kind}s ${describe(metas) || '(none)'}; export it with the layout described in lorabuild's README (issue: wrong ONNX export)`,
      );
    }
    return found.name;
  };
  return { inputs: inputs.map((e) => pick(inMeta, e, 'input')), outputs: outputs.map((e) => pick(outMeta, e, 'output')) };
}
