// lorabuild init [DIR] [--template demo|pokemon-showcase|one-line-art] [--list]
// Copies a ready lorafile (and its files) into a folder. Never overwrites: existing files are listed
// and nothing is written.
import { cpSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandArgs } from './args.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** template -> [source relative to the repo, destination relative to DIR] */
const TEMPLATES: Record<string, { summary: string; files: [string, string][] }> = {
  demo: {
    summary: 'builtin toy model (pretrained on colored shapes) + a small line-art dataset: a visible LoRA on any CPU in about a minute',
    files: [['lorafile.yaml', 'lorafile.yaml'], ['datasets/demo-lineart', 'datasets/demo-lineart']],
  },
  'pokemon-showcase': {
    summary: "the lab's part 2: DreamShaper 8 + svjack/pokemon-blip-captions-en-zh, with and without the LoRA",
    files: [['pipelines/pokemon-showcase', '.']],
  },
  'one-line-art': {
    summary: "the lab's exercise: your own dataset (image/N.jpeg + text/N.txt), a trigger word, a rubric and a CI workflow",
    files: [['pipelines/one-line-art', '.']],
  },
};

const HELP = `usage: lorabuild init [DIR] [--template NAME] [--list]

templates:
${Object.entries(TEMPLATES).map(([n, t]) => `  ${n.padEnd(17)} ${t.summary}`).join('\n')}
`;

function listFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

export async function main(argv: string[]): Promise<number> {
  const parsed = commandArgs(argv, { template: { type: 'string', short: 't' }, list: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, 'init', HELP);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  if (values.list) {
    process.stdout.write(HELP);
    return 0;
  }
  const name = values.template ?? 'demo';
  const template = TEMPLATES[name];
  if (!template) {
    process.stderr.write(`lorabuild init: unknown template '${name}'\n\n${HELP}`);
    return 2;
  }
  const target = resolve(positionals[0] ?? '.');
  const copies: [string, string][] = [];
  for (const [src, dst] of template.files) {
    const from = join(repoRoot, src);
    for (const file of listFiles(from)) copies.push([file, join(target, dst, relative(from, file))]);
  }
  const conflicts = copies.filter(([, to]) => existsSync(to)).map(([, to]) => relative(process.cwd(), to));
  if (conflicts.length) {
    process.stderr.write(`lorabuild init: these files exist already; nothing was written:\n${conflicts.map((c) => `  ${c}`).join('\n')}\nChoose an empty folder: lorabuild init NEW_FOLDER --template ${name}\n`);
    return 2;
  }
  for (const [from, to] of copies) {
    mkdirSync(dirname(to), { recursive: true });
    cpSync(from, to, { errorOnExist: true, force: false });
  }
  const shown = relative(process.cwd(), target);
  const where = shown === '' ? '.' : shown.startsWith('..') ? target : shown;
  process.stdout.write(`created ${copies.length} files from template '${name}' in ${where}\nnext: cd ${where} && lorabuild run\n`);
  return 0;
}
