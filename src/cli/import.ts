// lorabuild import comfyui WORKFLOW.json [-o lorafile.yaml] [--comfyui DIR] [--force]
import { readFileSync, existsSync } from 'node:fs';
import { writeFileAtomic } from '../cache/atomic.js';
import { homedir } from 'node:os';
import { Document, isSeq, visit } from 'yaml';
import { parseCommandArgs, UsageError } from './args.js';
import { parseWorkflow, WorkflowError } from '../comfyui/workflow.js';
import { workflowToLorafile } from '../comfyui/to-lorafile.js';

const HELP = `usage: lorabuild import comfyui WORKFLOW.json [-o lorafile.yaml] [--comfyui DIR] [--force]

Turns a ComfyUI workflow (UI or API JSON) into a lorafile: SimpleLoRA's LoRATrainer nodes become
loras, and each KSampler fed by Load LoRA / LoraLoaderModelOnly nodes becomes a render applying them
in chain order, with both strengths. A loader whose file no LoRATrainer writes becomes a file: entry
in the ComfyUI folder's models/loras, as checkpoints are looked up in models/checkpoints
(--comfyui DIR, else $COMFYUI_PATH, else ~/ComfyUI).
`;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandArgs(argv, {
      output: { type: 'string', short: 'o' },
      comfyui: { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    }, 'import');
  } catch (err) {
    if (err instanceof UsageError) return usage(err.message);
    throw err;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const [kind, file] = positionals;
  if (kind !== 'comfyui' || !file) return usage(kind && kind !== 'comfyui' ? `lorabuild import: unknown source '${kind}' (only 'comfyui')` : 'lorabuild import: name a workflow file');
  if (!existsSync(file)) return usage(`lorabuild import: ${file}: no such file`);

  const comfyui = values.comfyui ?? process.env.COMFYUI_PATH ?? '~/ComfyUI';
  let result;
  try {
    result = workflowToLorafile(parseWorkflow(readFileSync(file, 'utf8'), file), { comfyui: comfyui.replace(homedir(), '~'), source: file });
  } catch (err) {
    if (err instanceof WorkflowError) {
      process.stderr.write(`lorabuild import: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const trains = result.lorafile.loras !== undefined;
  const text = `# Imported from ${file} by \`lorabuild import comfyui\`.\n${trains ? "# resolution, flip, gradient_accumulation and lr_scheduler are what SimpleLoRA's LoRATrainer uses internally.\n" : ''}${toYaml(result.lorafile)}`;
  for (const note of result.notes) process.stderr.write(`note: ${note}\n`);
  if (!values.output) {
    process.stdout.write(text);
    return 0;
  }
  if (existsSync(values.output) && !values.force) {
    process.stderr.write(`lorabuild import: ${values.output} exists; pass --force to replace it\n`);
    return 2;
  }
  writeFileAtomic(values.output, text);
  process.stderr.write(`wrote ${values.output}\n`);
  return 0;
}

function usage(message: string): number {
  process.stderr.write(`${message}\n\n${HELP}`);
  return 2;
}

/** YAML with short lists of scalars on one line ([0, 1]), as people write lorafiles. */
function toYaml(value: unknown): string {
  const doc = new Document(value);
  visit(doc, {
    Seq(_, node) {
      if (isSeq(node) && node.items.every((item) => !(item && typeof item === 'object' && 'items' in item))) node.flow = true;
    },
  });
  return doc.toString({ lineWidth: 0 });
}
