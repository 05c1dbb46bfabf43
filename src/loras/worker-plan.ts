// The `lora_files` entry the worker's sample op patches with (src/worker/lorabuild_worker/lora_patch.py):
// every bound module with its target (kohya name), adapter kind and the tensor of each role, and the
// keys deliberately left out (alpha-only groups, and unknown keys an entry chose to ignore), so the
// worker can tell a planned omission from a file that changed under it.
import type { Json } from '../engine/types.js';
import type { LoraAnalysis } from './analyze.js';

export function workerLoraFile(path: string, analysis: LoraAnalysis): Json {
  const applied = new Set<string>();
  const modules = analysis.binding.modules.map((m) => {
    const tensors: Record<string, string> = {};
    for (const [role, tensor] of Object.entries(m.tensors)) {
      tensors[role] = tensor!.name;
      applied.add(tensor!.name);
    }
    return { target: m.module.kohya, kind: m.kind, tensors };
  });
  return { path, modules, skip_keys: analysis.keys.filter((k) => !applied.has(k)) };
}
