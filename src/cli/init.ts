// lorabuild init [DIR] [--template demo|pokemon-showcase|one-line-art] [--lorabuild-spec SPEC] [--no-package] [--list]
// Makes a folder that works on its own: the template's lorafile (and files), the dataset folders it
// names (image/ + text/), the JSON Schema its `$schema` comment points to, a .gitignore, and a
// package.json + package-lock.json that pin lorabuild (init-package.ts), so that a fresh clone or a
// CI runner installs it with `npm ci`. Never overwrites: existing files are listed, nothing written.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { writeFileAtomic } from '../cache/atomic.js';
import { PACKAGE_ROOT } from '../package-root.js';
import { parseConfig } from '../config/load.js';
import { didYouMean } from '../config/suggest.js';
import { commandArgs } from './args.js';
import { writePackageFiles } from './init-package.js';
import { SCHEMA_COMMENT, SCHEMA_FILE, writeSchemaFile } from './schema.js';

interface Template {
  summary: string;
  /** [source relative to the lorabuild package, destination relative to DIR] */
  files: [string, string][];
  /** npm scripts of the project's package.json */
  scripts: Record<string, string>;
}

const RUN_SCRIPTS = { build: 'lorabuild run', status: 'lorabuild status', check: 'lorabuild check' };

const TEMPLATES: Record<string, Template> = {
  demo: {
    summary: 'builtin toy model (pretrained on colored shapes) + a small line-art dataset: a visible LoRA on any CPU in about a minute',
    files: [['lorafile.yaml', 'lorafile.yaml'], ['datasets/demo-lineart', 'datasets/demo-lineart']],
    scripts: RUN_SCRIPTS,
  },
  'pokemon-showcase': {
    summary: "the lab's part 2: DreamShaper 8 + svjack/pokemon-blip-captions-en-zh, with and without the LoRA",
    files: [['pipelines/pokemon-showcase', '.']],
    scripts: RUN_SCRIPTS,
  },
  'one-line-art': {
    summary: "the lab's exercise: your own dataset (image/N.jpeg + text/N.txt), a trigger word, a rubric and a CI workflow",
    files: [
      ['pipelines/one-line-art/lorafile.yaml', 'lorafile.yaml'],
      ['pipelines/one-line-art/rubric.yaml', 'rubric.yaml'],
      ['pipelines/one-line-art/README.md', 'README.md'],
      ['pipelines/one-line-art/github-workflow.yml', '.github/workflows/grade.yml'],
    ],
    scripts: { ...RUN_SCRIPTS, grade: 'lorabuild grade --rubric rubric.yaml' },
  },
};

const GITIGNORE = `# lorabuild's cache (content-addressed, rebuilt on demand): never commit it
cache/
node_modules/
`;

const HELP = `usage: lorabuild init [DIR] [--template NAME] [--lorabuild-spec SPEC] [--no-package] [--list]

Creates DIR (default: the current folder) from a template: the lorafile and its files, the dataset
folders it names (with image/ and text/), ${SCHEMA_FILE} for editors, a .gitignore, and a
package.json + package-lock.json that pin lorabuild, so that \`npm ci\` installs it anywhere
(a fork, a CI runner). Existing files are never overwritten.

  -t, --template NAME     which template (default: demo)
  --lorabuild-spec SPEC   how package.json pins lorabuild: a git URL with a tag
                          (git+https://host/org/lorabuild.git#v0.1.0), a version or a tarball
                          (default: this lorabuild, packed into vendor/lorabuild-VERSION.tgz)
  --no-package            no package.json / lock / vendor (lorabuild is on the PATH anyway)
  --list                  list the templates

templates:
${Object.entries(TEMPLATES).map(([n, t]) => `  ${n.padEnd(17)} ${t.summary}`).join('\n')}
`;

function listFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** Folders of lab-layout datasets the template's lorafile names but does not bring: image/ and text/ with a .gitkeep. */
function datasetFolders(lorafile: string, target: string): string[] {
  const config = parseConfig(readFileSync(lorafile, 'utf8'), join(target, 'lorafile.yaml'));
  const keeps: string[] = [];
  for (const spec of Object.values(config.datasets)) {
    if (!spec.folder || (spec.layout !== 'lab' && spec.layout !== 'auto')) continue;
    const folder = resolve(target, spec.folder);
    if (relative(target, folder).startsWith('..')) continue; // outside the new folder: the user's
    for (const sub of ['image', 'text']) keeps.push(join(folder, sub, '.gitkeep'));
  }
  return keeps;
}

/** The template's lorafile with the `$schema` comment on top when it has none. */
function withSchemaComment(text: string): string {
  return text.includes('$schema=') ? text : `${SCHEMA_COMMENT}\n${text}`;
}

export async function main(argv: string[]): Promise<number> {
  const parsed = commandArgs(
    argv,
    { template: { type: 'string', short: 't' }, 'lorabuild-spec': { type: 'string' }, 'no-package': { type: 'boolean' }, list: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    'init',
    HELP,
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  if (values.list) {
    process.stdout.write(HELP);
    return 0;
  }
  const name = values.template ?? 'demo';
  const template = Object.hasOwn(TEMPLATES, name) ? TEMPLATES[name] : undefined;
  if (!template) {
    const suggestion = didYouMean(name, Object.keys(TEMPLATES));
    process.stderr.write(`lorabuild init: unknown template '${name}'${suggestion ? `; did you mean '${suggestion}'?` : ''}\n\n${HELP}`);
    return 2;
  }
  const target = resolve(positionals[0] ?? '.');
  const copies: [string, string][] = [];
  for (const [src, dst] of template.files) {
    const from = join(PACKAGE_ROOT, src);
    for (const file of listFiles(from)) copies.push([file, join(target, dst, relative(from, file))]);
  }
  const lorafile = copies.find(([, to]) => to === join(target, 'lorafile.yaml'))![0];
  const keeps = datasetFolders(lorafile, target).filter((k) => !copies.some(([, to]) => dirname(to) === dirname(k)));
  const generated = [join(target, SCHEMA_FILE), join(target, '.gitignore'), ...keeps];
  if (!values['no-package']) generated.push(join(target, 'package.json'), join(target, 'package-lock.json'), join(target, 'vendor'));
  const conflicts = [...copies.map(([, to]) => to), ...generated].filter((p) => existsSync(p)).map((p) => relative(process.cwd(), p) || '.');
  if (conflicts.length) {
    process.stderr.write(`lorabuild init: these files exist already; nothing was written:\n${conflicts.map((c) => `  ${c}`).join('\n')}\nChoose an empty folder: lorabuild init NEW_FOLDER --template ${name}\n`);
    return 2;
  }

  const written: string[] = [];
  for (const [from, to] of copies) {
    mkdirSync(dirname(to), { recursive: true });
    if (to === join(target, 'lorafile.yaml')) writeFileAtomic(to, withSchemaComment(readFileSync(from, 'utf8')));
    else cpSync(from, to, { errorOnExist: true, force: false });
    written.push(relative(target, to));
  }
  for (const keep of keeps) {
    writeFileAtomic(keep, '');
    written.push(relative(target, keep));
  }
  writeSchemaFile(target);
  writeFileAtomic(join(target, '.gitignore'), GITIGNORE);
  written.push(SCHEMA_FILE, '.gitignore');

  let lockNote = '';
  if (!values['no-package']) {
    const pkg = await writePackageFiles({ folder: target, lorabuildRoot: PACKAGE_ROOT, spec: values['lorabuild-spec'], scripts: template.scripts });
    written.push(...pkg.written);
    lockNote = pkg.noLock ? `\nno package-lock.json: ${pkg.noLock}; run \`npm install\` in it once and commit package-lock.json` : '';
    lockNote = `\nlorabuild is pinned in package.json as ${pkg.spec}${lockNote}`;
  }

  const shown = relative(process.cwd(), target);
  const where = shown === '' ? '.' : shown.startsWith('..') ? target : shown;
  const folders = keeps.map((k) => relative(target, dirname(k)));
  process.stdout.write(
    `created ${written.length} files from template '${name}' in ${where}` +
      (folders.length ? `\ndataset folders to fill: ${folders.join(', ')}` : '') +
      lockNote +
      `\nnext: cd ${where} && ${values['no-package'] ? 'lorabuild run' : 'npm ci && npx lorabuild run   (or lorabuild run, with lorabuild on the PATH)'}\n`,
  );
  return 0;
}
