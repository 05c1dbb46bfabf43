// rubric.yaml: a titled list of checks with points, each an `expect` expression over the facts
// (grade/facts.ts). Every problem is reported at its file:line:col, all at once, as a ConfigError.
//
//   title: One-line-art exercise
//   checks:
//     - id: rank
//       title: LoRA rank is 4
//       points: 2
//       expect: loras.one_line_art.rank == 4        # or a list: every expression must hold
import { readFileSync, statSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type YAMLMap } from 'yaml';
import type { Diagnostic } from '../config/diagnostic.js';
import { ConfigError } from '../config/errors.js';
import { didYouMean } from '../config/suggest.js';
import { ExpressionError, parseExpression, type Expression } from './expression.js';
import { checkFactPath } from './fact-shape.js';

export interface RubricCheck {
  id: string;
  title: string;
  points: number;
  expect: Expression[];
}

export interface Rubric {
  file: string;
  title: string;
  checks: RubricCheck[];
}

const MAX_RUBRIC_BYTES = 256 * 1024;
const TOP_KEYS = ['title', 'checks'];
const CHECK_KEYS = ['id', 'title', 'points', 'expect'];
const ID = /^[A-Za-z0-9_\-.]+$/;

export function loadRubric(file: string, displayName = file): Rubric {
  let size: number;
  try {
    const st = statSync(file);
    // a FIFO or a device would block or never end: only a regular file is read
    if (!st.isFile()) {
      throw new ConfigError([{ severity: 'error', code: 'rubric-not-file', file: displayName, message: `rubric ${displayName} is ${st.isDirectory() ? 'a folder' : 'not a regular file'}`, hint: 'pass the rubric YAML file (or its URL) with --rubric' }]);
    }
    size = st.size;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError([{ severity: 'error', code: 'rubric-missing', file: displayName, message: `rubric ${displayName} does not exist`, hint: 'pass the rubric with --rubric FILE or --rubric URL' }]);
  }
  if (size > MAX_RUBRIC_BYTES) {
    throw new ConfigError([{ severity: 'error', code: 'rubric-too-large', file: displayName, message: `rubric is ${size} bytes; the limit is ${MAX_RUBRIC_BYTES}` }]);
  }
  return parseRubric(readFileSync(file, 'utf8'), displayName);
}

/** How long a rubric URL may take to answer, in all. */
const FETCH_TIMEOUT_MS = 30_000;

/** A URL as shown in messages: without user, password, query or fragment (they may hold a token). */
export function shownUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return url;
  }
}

/**
 * Downloads a rubric (the TA's copy, outside the student's repository): http(s) only, at most
 * MAX_RUBRIC_BYTES, within FETCH_TIMEOUT_MS; every failure is a ConfigError naming the URL.
 */
export async function fetchRubric(url: string): Promise<Rubric> {
  const shown = shownUrl(url);
  const fail = (message: string, hint = 'check the URL, or download the rubric and pass its path'): never => {
    throw new ConfigError([{ severity: 'error', code: 'rubric-unreachable', file: shown, message, hint }]);
  };
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'follow' });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = (err as Error).name === 'TimeoutError' ? `no answer within ${FETCH_TIMEOUT_MS / 1000} s` : (cause?.code ?? cause?.message ?? (err as Error).message);
    return fail(`could not download the rubric: ${why}`);
  }
  if (!response.ok) return fail(`could not download the rubric: HTTP ${response.status} ${response.statusText}`.trim());
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > MAX_RUBRIC_BYTES) return fail(`the rubric is ${declared} bytes; the limit is ${MAX_RUBRIC_BYTES}`, 'is this URL the rubric YAML?');
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body ?? []) {
      size += (chunk as Uint8Array).length;
      if (size > MAX_RUBRIC_BYTES) return fail(`the rubric is larger than ${MAX_RUBRIC_BYTES} bytes`, 'is this URL the rubric YAML?');
      chunks.push(Buffer.from(chunk as Uint8Array));
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    return fail(`the download of the rubric broke off: ${(err as Error).message}`);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (/^\s*<(!doctype|html)/i.test(text)) return fail('the URL answered with an HTML page, not a rubric', 'link the raw YAML file (e.g. raw.githubusercontent.com/...)');
  return parseRubric(text, shown);
}

export const isRubricUrl = (spec: string): boolean => /^https?:\/\//i.test(spec);

export function parseRubric(text: string, file: string): Rubric {
  const source = text.replace(/^\uFEFF/, '');
  const lines = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lines, uniqueKeys: true });
  const diagnostics: Diagnostic[] = [];
  const at = (node: Node | null | undefined, offsetInside = 0, length?: number): Pick<Diagnostic, 'file' | 'line' | 'col' | 'endCol'> => {
    const range = node?.range;
    if (!range) return { file };
    const start = lines.linePos(range[0] + offsetInside);
    const end = length !== undefined ? start.col + length : lines.linePos(range[1]).line === start.line ? lines.linePos(range[1]).col : undefined;
    return { file, line: start.line, col: start.col, ...(end !== undefined && end > start.col ? { endCol: end } : {}) };
  };
  const error = (code: string, message: string, where: Pick<Diagnostic, 'file' | 'line' | 'col' | 'endCol'>, hint?: string) =>
    diagnostics.push({ severity: 'error', code, message, ...where, ...(hint ? { hint } : {}) });

  for (const e of doc.errors) {
    const pos = e.linePos?.[0];
    error('yaml', e.message.split('\n')[0], { file, ...(pos ? { line: pos.line, col: pos.col } : {}) });
  }
  if (diagnostics.length) throw new ConfigError(diagnostics, source);

  const root = doc.contents;
  if (!isMap(root)) {
    error('rubric-shape', 'a rubric is a mapping with `title` and `checks`', at(root as Node | null), 'start with `checks:` followed by a list of { id, title, points, expect }');
    throw new ConfigError(diagnostics, source);
  }
  unknownKeys(root, TOP_KEYS, 'rubric', error, at);
  const titleNode = root.get('title', true);
  const title = isScalar(titleNode) && typeof titleNode.value === 'string' ? titleNode.value : 'Rubric';
  const checksNode = root.get('checks', true);
  const checks: RubricCheck[] = [];
  if (!isSeq(checksNode) || checksNode.items.length === 0) {
    error('rubric-checks', '`checks` must be a non-empty list', checksNode ? at(checksNode as Node) : at(root), 'each check: { id, title, points, expect }');
    throw new ConfigError(diagnostics, source);
  }
  const seen = new Set<string>();
  for (const [index, item] of checksNode.items.entries()) {
    const label = `check ${index + 1}`;
    if (!isMap(item)) {
      error('rubric-check', `${label} must be a mapping with id, title, points and expect`, at(item as Node));
      continue;
    }
    unknownKeys(item, CHECK_KEYS, label, error, at);
    const idNode = item.get('id', true);
    const id = isScalar(idNode) ? String(idNode.value) : '';
    if (!isScalar(idNode) || !ID.test(id)) error('rubric-id', `${label}: \`id\` must be letters, digits, '_', '-' or '.'`, at((idNode as Node) ?? item));
    else if (seen.has(id)) error('rubric-id', `${label}: id '${id}' is used twice`, at(idNode));
    seen.add(id);
    const titleOf = item.get('title', true);
    const checkTitle = isScalar(titleOf) && typeof titleOf.value === 'string' && titleOf.value.trim() ? titleOf.value : id;
    const pointsNode = item.get('points', true);
    const points = isScalar(pointsNode) ? pointsNode.value : undefined;
    if (typeof points !== 'number' || !Number.isFinite(points) || points < 0) error('rubric-points', `${label}: \`points\` must be a number >= 0`, at((pointsNode as Node) ?? item));
    const expectNode = item.get('expect', true);
    const expressions: Expression[] = [];
    const expectItems = isSeq(expectNode) ? expectNode.items : [expectNode];
    if (!expectNode || expectItems.length === 0) error('rubric-expect', `${label}: \`expect\` is missing`, at(item), 'e.g. expect: loras.my_lora.rank == 4');
    else {
      for (const e of expectItems) {
        if (!isScalar(e) || typeof e.value !== 'string') {
          error('rubric-expect', `${label}: \`expect\` must be a string (or a list of strings) like \`loras.my_lora.rank == 4\``, at(e as Node));
          continue;
        }
        try {
          const expression = parseExpression(e.value);
          const quoted = e.type === 'QUOTE_DOUBLE' || e.type === 'QUOTE_SINGLE' ? 1 : 0;
          const problem = checkFactPath(expression.path);
          if (problem) {
            // the bad segment's offset: leading blanks, then the segments before it with their dots
            const offset = e.value.length - e.value.trimStart().length + expression.path.slice(0, problem.at).reduce((n, seg) => n + seg.length + 1, 0);
            error('rubric-fact', `${label}: ${problem.message}`, at(e, offset + quoted, expression.path[problem.at].length), '`lorabuild grade --help` lists the facts; names of loras, datasets and renders are free');
            continue;
          }
          expressions.push(expression);
        } catch (err) {
          if (!(err instanceof ExpressionError)) throw err;
          // a quoted scalar starts one character before its text
          const quoted = e.type === 'QUOTE_DOUBLE' || e.type === 'QUOTE_SINGLE' ? 1 : 0;
          error('rubric-expect', `${label}: ${err.message}`, at(e, err.offset + quoted, err.length));
        }
      }
    }
    checks.push({ id, title: checkTitle, points: typeof points === 'number' ? points : 0, expect: expressions });
  }
  if (diagnostics.length) throw new ConfigError(diagnostics, source);
  return { file, title, checks };
}

function unknownKeys(
  map: YAMLMap,
  known: string[],
  where: string,
  error: (code: string, message: string, at: Pick<Diagnostic, 'file' | 'line' | 'col' | 'endCol'>, hint?: string) => void,
  at: (node: Node | null | undefined) => Pick<Diagnostic, 'file' | 'line' | 'col' | 'endCol'>,
): void {
  for (const pair of map.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    if (known.includes(key)) continue;
    const guess = didYouMean(key, known);
    error('rubric-key', `unknown key '${key}' in ${where}`, at(pair.key as Node), guess ? `did you mean '${guess}'?` : `known keys: ${known.join(', ')}`);
  }
}
