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
    size = statSync(file).size;
  } catch {
    throw new ConfigError([{ severity: 'error', code: 'rubric-missing', file: displayName, message: `rubric ${displayName} does not exist`, hint: 'pass the rubric with --rubric FILE' }]);
  }
  if (size > MAX_RUBRIC_BYTES) {
    throw new ConfigError([{ severity: 'error', code: 'rubric-too-large', file: displayName, message: `rubric is ${size} bytes; the limit is ${MAX_RUBRIC_BYTES}` }]);
  }
  return parseRubric(readFileSync(file, 'utf8'), displayName);
}

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
          expressions.push(parseExpression(e.value));
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
