// Loads lorafile.yaml: YAML with source positions -> zod schema -> cross-checks -> Config.
// Every problem found becomes a positioned Diagnostic; all of them are thrown together as a ConfigError.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Pair } from 'yaml';
import { crossCheck } from './cross-checks.js';
import type { Diagnostic } from './diagnostic.js';
import { ConfigError } from './errors.js';
import { YamlLocator, type PathSegment } from './locate.js';
import { locatorOf, rememberLocator } from './lazy.js';
import { defaultCheckpointEvery, LorafileSchema, type Config } from './schema.js';
import { reportSchemaIssues } from './schema-issues.js';
import { DiagnosticSink, ownerOf } from './sink.js';
import { displayFileName } from './display.js';
import { toJsWithAliasCheck } from './yaml-aliases.js';
import { kindOf, readRegularFileSync } from '../cache/safe-fs.js';

export { displayFileName };

export const DEFAULT_LORAFILE = 'lorafile.yaml';

/** A lorafile is a few kilobytes of hand-written YAML; anything this big is the wrong file. */
export const MAX_LORAFILE_BYTES = 1024 * 1024;

const SECTIONS = ['models', 'datasets', 'loras', 'renders'];

export { locatorOf };

const YAML_HINTS: Record<string, string> = {
  TAB_AS_INDENT: 'YAML does not allow tabs for indentation: indent with spaces',
  BAD_INDENT: 'indent nested keys with the same number of spaces as their siblings',
  MISSING_CHAR: 'a bracket or quote is not closed',
  BLOCK_AS_IMPLICIT_KEY: "check the indentation, and quote values that contain ': '",
  MULTILINE_IMPLICIT_KEY: "a key must fit on one line: check for a missing ':' or an unclosed quote",
  UNEXPECTED_TOKEN: "check the indentation, and quote values that contain ': ' or start with '#', '*', '&', '!' or '@'",
};

/** An error found at the end of the file is shown at the end of its last non-blank line instead. */
function lastContentOffset(source: string, offset: number): number {
  if (source === '' || source.slice(offset).trim() !== '') return offset;
  const trimmed = source.slice(0, offset).trimEnd();
  return Math.max(0, trimmed.length - 1);
}

function reportYamlErrors(sink: DiagnosticSink, doc: Document, source: string): void {
  for (const error of doc.errors) {
    const message = error.message.replace(/\s+at line \d+, column \d+.*$/s, '');
    const span = sink.locator.spanOfRange(lastContentOffset(source, error.pos[0]), error.pos[1]);
    const bracket = /end with an? ([\]}])/.exec(message)?.[1];
    const hint = bracket
      ? `close it with '${bracket}', or indent its continuation lines deeper than its key`
      : (YAML_HINTS[error.code] ?? "check the indentation and quoting around this point (quote values that contain ': ' or ' #')");
    sink.add(span, 'yaml-syntax', `YAML syntax error: ${message}`, hint);
  }
}

/** Duplicate keys, with a message that names the section ("duplicate lora name 'x'") and the first definition. */
function reportDuplicateKeys(sink: DiagnosticSink, node: unknown, at: PathSegment[]): void {
  if (isMap(node)) {
    const seen = new Map<string, number>();
    for (const pair of node.items as Pair<unknown, unknown>[]) {
      const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
      if (key === undefined) continue;
      const keyRange = (pair.key as { range?: [number, number, number] }).range;
      const firstLine = seen.get(key);
      if (firstLine !== undefined && keyRange) {
        const span = sink.locator.spanOfRange(keyRange[0], keyRange[1]);
        const noun = at.length === 1 ? ownerOf([...at, key])?.split(' ')[0] : undefined;
        const what = noun ? `duplicate ${noun} name '${key}'` : `duplicate key '${key}'${ownerOf(at) ? ` in ${ownerOf(at)}` : ''}`;
        sink.add(span, 'duplicate-key', `${what} (first defined on line ${firstLine})`, noun ? 'rename one of them: names must be unique' : 'keep only one of them');
      } else if (keyRange) {
        seen.set(key, sink.locator.spanOfRange(keyRange[0], keyRange[1]).line);
      }
      reportDuplicateKeys(sink, pair.value, [...at, key]);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => reportDuplicateKeys(sink, item, [...at, i]));
  }
}

/** Parse and validate lorafile text. Pure and synchronous; `file` is used for positions and paths. */
export function parseConfig(text: string, file: string): Config {
  const source = text.replace(/^\uFEFF/, '');
  const lineCounter = new LineCounter();
  // uniqueKeys is off so that duplicates get our own message naming the section and first line
  const doc = parseDocument(source, { lineCounter, uniqueKeys: false, prettyErrors: false, keepSourceTokens: false });
  const locator = new YamlLocator(doc, lineCounter, source);
  const sink = new DiagnosticSink(displayFileName(file), locator);

  reportYamlErrors(sink, doc, source);
  if (sink.diagnostics.length > 0) throw new ConfigError(sink.sorted(), source);
  reportDuplicateKeys(sink, doc.contents, []);

  const expanded = toJsWithAliasCheck({ visit, isAlias }, doc, lineCounter);
  if ('problem' in expanded) {
    const { message, hint, line, col, endCol } = expanded.problem;
    sink.add(line !== undefined && col !== undefined ? { line, col, endCol: endCol ?? col + 1 } : { line: 1, col: 1, endCol: 2 }, 'yaml-alias', message, hint);
    throw new ConfigError(sink.sorted(), source);
  }
  const raw: unknown = expanded.value;
  // a section whose entries are all commented out reads as null: treat it as empty
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
    const top = raw as Record<string, unknown>;
    for (const key of SECTIONS) if (key in top && top[key] === null) top[key] = {};
  }
  const result = LorafileSchema.safeParse(raw);
  if (!result.success) reportSchemaIssues(sink, result.error.issues, raw);
  if (raw && typeof raw === 'object' && !Array.isArray(raw)) crossCheck(sink, raw);
  if (sink.diagnostics.length > 0 || !result.success) throw new ConfigError(sink.sorted(), source);

  const abs = path.resolve(file);
  const loras = Object.fromEntries(Object.entries(result.data.loras).map(([n, l]) => [n, { ...l, checkpoint_every: l.checkpoint_every ?? defaultCheckpointEvery(l.steps) }]));
  const config: Config = { ...result.data, loras, file: abs, root: path.dirname(abs), source };
  rememberLocator(config, locator);
  return config;
}

/** Read and parse a lorafile (default ./lorafile.yaml). */
export async function loadConfig(file: string = DEFAULT_LORAFILE): Promise<Config> {
  let source: string;
  try {
    const st = await stat(file);
    // a FIFO would block the read forever, a device never end
    if (!st.isFile() && !st.isDirectory()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTREG', kind: kindOf(st) });
    const size = st.size;
    if (size > MAX_LORAFILE_BYTES) {
      throw new ConfigError([
        {
          severity: 'error',
          code: 'lorafile-too-large',
          file: displayFileName(file),
          message: `the lorafile is ${(size / 1024 / 1024).toFixed(1)} MiB; a lorafile is a small YAML file (at most ${MAX_LORAFILE_BYTES / 1024 / 1024} MiB)`,
          hint: 'check that -f names the lorafile and not a dataset or model file',
        },
      ]);
    }
    source = readRegularFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const diagnostic: Diagnostic = {
      severity: 'error',
      code: 'unreadable-lorafile',
      file: displayFileName(file),
      message:
        code === 'ENOENT'
          ? 'lorafile not found'
          : code === 'EISDIR'
            ? 'this is a folder, not a lorafile'
            : code === 'ENOTREG'
              ? `this is ${(err as { kind?: string }).kind ?? 'not a regular file'}, not a lorafile`
              : `cannot read the lorafile (${code ?? String(err)})`,
      hint:
        code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTREG'
          ? `run lorabuild in the folder that holds ${DEFAULT_LORAFILE}, or name the file with -f PATH`
          : 'check the file permissions',
    };
    throw new ConfigError([diagnostic]);
  }
  return parseConfig(source, file);
}
