// lorabuild inspect FILE.safetensors [--json]
// Describes a LoRA (adapter kinds, key style, family, rank, alpha, targets, trigger words, metadata,
// SD1 fit) or a checkpoint (family).
// Exit 0: described (and a LoRA fits its base: SD1.5, or the tiny/toy builtin it says it was trained on);
// 1: unreadable file or a LoRA that does not fit; 2: usage.
import { commandArgs } from './args.js';
import { inspectSafetensors, type SafetensorsInfo } from '../safetensors/inspect.js';
import { SafetensorsError } from '../safetensors/format.js';
import { printable } from '../text/printable.js';
import type { Sd1Arch } from '../safetensors/sd15.js';
import { FAMILY_LABEL, familyWithArticle } from '../loras/family.js';

const HELP = `usage: lorabuild inspect FILE.safetensors [--json] [--full]

  --json   one JSON object (format, kinds, family, ranks, alphas, targets, triggers, fit, metadata)
  --full   print long metadata values (ss_tag_frequency ...) untruncated
`;

const LIST_LIMIT = 20;

function mib(bytes: number): string {
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

const archLabel = (arch: Sd1Arch) => (arch === 'sd15' ? 'SD1.5 UNet' : `lorabuild's ${arch} builtin UNet`);

function describe(info: SafetensorsInfo, full: boolean): string {
  const lines: string[] = [];
  const dtypes = Object.entries(info.dtypes).map(([d, n]) => `${n} ${d}`).join(', ');
  if (info.lora) {
    const l = info.lora;
    lines.push(`${info.file}: ${l.kinds.join(' + ') || 'LoRA'} (${l.format} keys), ${l.modules} modules, ${mib(info.bytes)} (${dtypes})`);
    lines.push(`  family: ${FAMILY_LABEL[l.family]} (${l.familyEvidence.join(', ')})`);
    const alpha = l.alphas.length ? l.alphas.join(', ') : 'none (scale 1)';
    const scale = l.ranks.length === 1 && l.alphas.length === 1 ? ` (scale ${(l.alphas[0] / l.ranks[0]).toPrecision(3)})` : '';
    lines.push(`  rank ${l.ranks.join(', ') || '—'}, alpha ${alpha}${scale}`);
    lines.push(`  targets: ${Object.entries(l.targets).map(([g, n]) => `${g} ${n}`).join(', ') || 'none known'}`);
    lines.push(`  trigger words: ${l.triggers.length ? l.triggers.join(', ') : 'none in the metadata'}`);
    if (l.family !== 'sd1') {
      lines.push(`  ${archLabel(l.fit.arch)}: DOES NOT FIT (${familyWithArticle(l.family)} LoRA)`);
    } else if (l.fit.fits) {
      lines.push(`  ${archLabel(l.fit.arch)}: fits (all ${l.modules} modules known, shapes match)`);
    } else {
      lines.push(`  ${archLabel(l.fit.arch)}: DOES NOT FIT (${l.fit.unknown.length} unknown module names, ${l.fit.mismatched.length} shape mismatches)`);
      for (const name of l.fit.unknown.slice(0, LIST_LIMIT)) lines.push(`    unknown: ${name}`);
      if (l.fit.unknown.length > LIST_LIMIT) lines.push(`    ... and ${l.fit.unknown.length - LIST_LIMIT} more unknown`);
      for (const m of l.fit.mismatched.slice(0, LIST_LIMIT)) lines.push(`    shape: ${m.module}: ${m.problem}`);
      if (l.fit.mismatched.length > LIST_LIMIT) lines.push(`    ... and ${l.fit.mismatched.length - LIST_LIMIT} more mismatches`);
    }
  } else if (info.checkpoint) {
    const c = info.checkpoint;
    const family = { sd1: 'SD1.x', sd2: 'SD2.x', sdxl: 'SDXL', unknown: 'unknown family' }[c.family];
    lines.push(`${info.file}: checkpoint, ${family}${c.arch ? ` (lorabuild builtin '${c.arch}')` : ''}, ${c.layout} layout, ${mib(info.bytes)} (${dtypes})`);
    lines.push(`  ${c.unetKeys} UNet, ${c.vaeKeys} VAE, ${c.textEncoderKeys} text-encoder tensors`);
  } else {
    lines.push(`${info.file}: ${info.tensors} tensors, ${mib(info.bytes)} (${dtypes}); neither a LoRA nor a diffusion checkpoint`);
  }
  const keys = Object.keys(info.metadata).sort();
  if (keys.length) {
    lines.push('  metadata:');
    for (const key of keys) {
      const value = info.metadata[key];
      const shown = !full && value.length > 100 ? `${value.slice(0, 100)}… (${value.length} chars; --full shows all)` : value;
      lines.push(`    ${key}: ${shown}`);
    }
  } else {
    lines.push('  metadata: none');
  }
  return `${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const parsed = commandArgs(argv, { json: { type: 'boolean' }, full: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, 'inspect', HELP);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) {
    process.stderr.write(`lorabuild inspect: give exactly one .safetensors file\n\n${HELP}`);
    return 2;
  }
  let info: SafetensorsInfo;
  try {
    info = await inspectSafetensors(positionals[0]);
  } catch (err) {
    if (err instanceof SafetensorsError) {
      process.stderr.write(`lorabuild inspect: ${printable(err.message)}\n`);
      return 1;
    }
    throw err;
  }
  process.stdout.write(values.json ? `${JSON.stringify(info, null, 2)}\n` : printable(describe(info, values.full ?? false)));
  return info.lora && !info.lora.fit.fits ? 1 : 0;
}
