// Checks the LoRAs of the planned renders against their base models before anything runs (part of
// engine/preflight.ts), so a LoRA that cannot go on the model (another family, other widths, keys
// that fit nothing, a file that is not a LoRA) is a lorafile diagnostic at its entry, not a failure
// after training. Reads only safetensors headers and alphas. A missing file is engine/preflight's
// (with its did-you-mean); models whose architecture cannot be told without building them (hub
// models), files of Hub repos (not pinned or downloaded yet) and trained LoRAs that do not exist yet
// are checked by the render stage instead, before it renders anything.
import { existsSync } from 'node:fs';
import { displayPath, resolveUserPath } from '../config/paths.js';
import type { Diagnostic } from '../config/diagnostic.js';
import { ConfigError } from '../config/errors.js';
import { renderLoraEntries, renderModelName } from '../config/render-loras.js';
import type { Config } from '../config/schema.js';
import type { Plan } from '../engine/types.js';
import { SafetensorsError } from '../safetensors/format.js';
import type { Sd1Arch } from '../safetensors/sd15.js';
import { knownModelArch } from '../stages/model.js';
import { analyzeLoraFile } from './analyze.js';
import { atEntry, fitDiagnostics } from './diagnostics.js';
import { ARCH_LABEL, fitProblems } from './fit.js';
import { fileName } from './source.js';

async function renderProblems(config: Config, render: string, archOf: (model: string) => Promise<Sd1Arch | null>): Promise<Diagnostic[]> {
  const spec = config.renders[render];
  const modelName = renderModelName(config, spec);
  const arch = modelName ? await archOf(modelName) : null;
  if (!modelName || !arch) return [];
  const out: Diagnostic[] = [];
  for (const entry of renderLoraEntries(spec)) {
    if (entry.kind === 'lora') {
      const trainedOn = config.loras[entry.lora]?.model;
      const trainedArch = trainedOn ? await archOf(trainedOn) : null;
      if (trainedArch && trainedArch !== arch) {
        out.push(
          atEntry(config, render, entry, {
            severity: 'error',
            code: 'lora-family',
            message: `lora '${entry.lora}' is trained on ${trainedOn} (${ARCH_LABEL[trainedArch]}); ${modelName} is ${ARCH_LABEL[arch]}`,
            hint: `render it on a model of the same architecture as ${trainedOn}`,
          }),
        );
      }
      continue;
    }
    if (entry.kind === 'hub') continue; // its header is known once pinned: the render stage checks it
    let path: string;
    try {
      path = resolveUserPath(config, entry.file);
    } catch (err) {
      if (err instanceof ConfigError) continue; // a Windows path: engine/preflight reports it
      throw err;
    }
    if (!existsSync(path)) continue; // engine/preflight reports it, with the closest name
    const shown = displayPath(config, path);
    try {
      const analysis = await analyzeLoraFile(path, arch);
      if (!analysis) {
        out.push(atEntry(config, render, entry, { severity: 'error', code: 'lora-file', message: `${shown} holds no LoRA tensors (is it a checkpoint?)`, hint: "name a LoRA .safetensors file here, and base models under 'models:'" }));
        continue;
      }
      out.push(...fitDiagnostics(config, render, entry, fitProblems(analysis, fileName(entry.file), { name: modelName, arch }, entry.ignore_unknown_keys)).filter((d) => d.severity === 'error'));
    } catch (err) {
      if (!(err instanceof SafetensorsError)) throw err;
      out.push(atEntry(config, render, entry, { severity: 'error', code: 'lora-file', message: `${shown} is not a readable .safetensors file: ${err.message}`, hint: 'download or export the LoRA again' }));
    }
  }
  return out;
}

/** Every LoRA of the plan's renders that cannot go on its model, with the render stage it stops. */
export async function loraFitProblems(config: Config, plan: Plan): Promise<{ diagnostic: Diagnostic; stage: string }[]> {
  const arches = new Map<string, Promise<Sd1Arch | null>>();
  const archOf = (model: string) => {
    if (!arches.has(model)) arches.set(model, knownModelArch(config, model));
    return arches.get(model)!;
  };
  const out: { diagnostic: Diagnostic; stage: string }[] = [];
  for (const node of plan.stages.values()) {
    if (node.kind !== 'render' || !config.renders[node.target]) continue;
    for (const diagnostic of await renderProblems(config, node.target, archOf)) out.push({ diagnostic, stage: node.id });
  }
  return out;
}
