// lorabuild's entry point: dispatches to one module per command (src/cli/<command>.ts), each
// exporting `main(argv): Promise<number>` (the exit code). Modules load lazily so that a no-op
// `lorabuild run` pays only for what it uses.
const COMMANDS: Record<string, { summary: string; load: () => Promise<{ main(argv: string[]): Promise<number> }> }> = {
  run: { summary: 'build the selected targets (default: all), running only stale stages', load: () => import('./run.js') },
  status: { summary: 'show each stage as fresh / cached / stale, and why', load: () => import('./status.js') },
  plan: { summary: 'print the stage graph (--json, --mermaid)', load: () => import('./plan.js') },
  watch: { summary: 'rebuild while captions and the lorafile change', load: () => import('./watch.js') },
  check: { summary: 'verify that the lock, inputs and artifacts agree (CI)', load: () => import('./check.js') },
  grade: { summary: 'grade a lab submission against a rubric', load: () => import('./grade.js') },
  cache: { summary: 'cache ls | verify | gc', load: () => import('./cache.js') },
  schema: { summary: 'print the lorafile JSON Schema', load: () => import('./schema.js') },
  tokenize: { summary: 'print the CLIP token ids of a text', load: () => import('./tokenize.js') },
  doctor: { summary: 'check python, torch, CUDA and BLAS', load: () => import('./doctor.js') },
  inspect: { summary: 'describe a .safetensors file (LoRA or checkpoint)', load: () => import('./inspect.js') },
  init: { summary: 'scaffold a lorafile from a template', load: () => import('./init.js') },
  import: { summary: 'import a ComfyUI workflow as a lorafile', load: () => import('./import.js') },
  caption: { summary: 'draft captions with a WD14-style ONNX tagger', load: () => import('./caption.js') },
};

async function version(): Promise<string> {
  const [{ readFileSync }, { join }, { PACKAGE_ROOT }] = await Promise.all([import('node:fs'), import('node:path'), import('../package-root.js')]);
  const pkg = join(PACKAGE_ROOT, 'package.json');
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `usage: lorabuild <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nlorabuild help <command> (or lorabuild <command> --help) for its options\n`;
}

async function main(argv: string[]): Promise<number> {
  let [command, ...rest] = argv;
  // `lorabuild help run` is `lorabuild run --help`
  if (command === 'help' && rest.length > 0) [command, rest] = [rest[0], ['--help']];
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(usage());
    return command ? 0 : 2;
  }
  if (command === '--version' || command === '-V') {
    process.stdout.write(`lorabuild ${await version()}\n`);
    return 0;
  }
  const entry = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!entry) {
    const { didYouMean } = await import('../config/suggest.js');
    const suggestion = didYouMean(command, Object.keys(COMMANDS));
    const what = command.startsWith('-') ? 'option' : 'command';
    const hint = suggestion ? `did you mean 'lorabuild ${suggestion}'?` : "'lorabuild help' lists the commands";
    process.stderr.write(`lorabuild: unknown ${what} '${command}'; ${hint}\n\n${usage()}`);
    return 2;
  }
  // a command that walks dataset folders: its stat helper thread starts while the command's code
  // loads (the cache of a lorafile in this folder; run and status start it again from the real one)
  if (command === 'run' || command === 'status') {
    const cache = process.env.LORABUILD_CACHE || 'cache';
    void import('../datasets/local/stat-thread.js')
      .then((t) => t.startStatThreadIfHinted(cache))
      .then(() => import('../datasets/local/parallel-lstat.js'))
      .then((m) => m.prestartStatHelper(cache), () => {});
  }
  let mod;
  try {
    mod = await entry.load();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') {
      process.stderr.write(`lorabuild: '${command}' is not available in this build\n`);
      return 2;
    }
    throw err;
  }
  return mod.main(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`lorabuild: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 70;
  },
);
