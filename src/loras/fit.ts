// Whether a LoRA file can go on a model, decided from its analysis before any compute: the family
// (an SDXL or SD2 LoRA on an SD1 model), the SD1 widths (SD1.5 vs the tiny and toy builtins), modules whose
// tensors do not fit, and keys that match nothing (an error unless the entry says
// ignore_unknown_keys: true, then a warning).
import type { Sd1Arch } from '../safetensors/sd15.js';
import type { LoraAnalysis } from './analyze.js';
import { familyWithArticle, type FamilyGuess } from './family.js';

export const ARCH_LABEL: Record<Sd1Arch, string> = { sd15: 'SD1.5', tiny: "lorabuild's tiny SD1 builtin", toy: "lorabuild's toy SD1 builtin" };

export interface FitProblem {
  severity: 'error' | 'warning';
  code: 'lora-family' | 'lora-shapes' | 'lora-unknown-keys' | 'lora-empty';
  message: string;
  hint: string;
}

const SHOWN = 5;

function listed(items: string[]): string {
  return items.slice(0, SHOWN).join(', ') + (items.length > SHOWN ? `, … (${items.length - SHOWN} more)` : '');
}


/**
 * A family or width mismatch, told from the keys and shapes alone (so from a header before the file
 * is downloaded); null when the family fits.
 */
export function familyProblem(family: FamilyGuess, label: string, model: { name: string; arch: Sd1Arch }): FitProblem | null {
  const modelIs = `${model.name} is ${ARCH_LABEL[model.arch]}`;
  if (family.family !== 'sd1') {
    return {
      severity: 'error',
      code: 'lora-family',
      message: `${label} is ${familyWithArticle(family.family)} LoRA (${family.evidence.join(', ')}); ${modelIs}`,
      hint: `${familyWithArticle(family.family)} LoRA does not go on an SD1.x model: use a LoRA made for SD1.5-based models, or remove this entry`,
    };
  }
  if (family.arch && family.arch !== model.arch) {
    return {
      severity: 'error',
      code: 'lora-family',
      message: `${label} is a LoRA for ${ARCH_LABEL[family.arch]} (${family.evidence.join(', ')}); ${modelIs}`,
      hint: `use a LoRA made for ${ARCH_LABEL[model.arch]}`,
    };
  }
  return null;
}

/**
 * `label`: the LoRA as the user knows it (its file name); `model`: the model entry's name and
 * architecture. Errors first; an empty list means it fits.
 */
export function fitProblems(analysis: LoraAnalysis, label: string, model: { name: string; arch: Sd1Arch }, ignoreUnknownKeys: boolean): FitProblem[] {
  const { family, binding } = analysis;
  const mismatch = familyProblem(family, label, model);
  if (mismatch) return [mismatch];
  const problems: FitProblem[] = [];
  if (binding.problems.length) {
    problems.push({
      severity: 'error',
      code: 'lora-shapes',
      message: `${label}: ${binding.problems.length} of its modules do not fit ${model.name} (${ARCH_LABEL[model.arch]}): ${listed(binding.problems.map((p) => `${p.prefix} ${p.problem}`))}`,
      hint: 'the file is damaged or made for another architecture; use a LoRA made for this model',
    });
  }
  if (binding.unknownKeys.length) {
    const fits = binding.modules.length;
    problems.push({
      severity: ignoreUnknownKeys ? 'warning' : 'error',
      code: 'lora-unknown-keys',
      message: ignoreUnknownKeys
        ? `${label}: ${binding.unknownKeys.length} keys match no module of ${model.name} and are ignored (ignore_unknown_keys: true): ${listed(binding.unknownKeys)}`
        : `${label}: ${binding.unknownKeys.length} keys match no module of ${model.name} (${ARCH_LABEL[model.arch]}): ${listed(binding.unknownKeys)}`,
      hint: ignoreUnknownKeys
        ? `only the ${fits} modules that fit are applied`
        : `a LoRA applied by half is worse than none; if you know the rest does not matter, set 'ignore_unknown_keys: true' on this entry to apply the ${fits} modules that fit`,
    });
  }
  if (binding.modules.length === 0 && problems.every((p) => p.severity !== 'error')) {
    problems.push({ severity: 'error', code: 'lora-empty', message: `${label}: none of its keys apply to ${model.name} (${ARCH_LABEL[model.arch]})`, hint: 'use a LoRA made for this model' });
  }
  return problems.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1));
}
