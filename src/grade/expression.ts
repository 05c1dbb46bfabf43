// A rubric check's `expect`: PATH OP VALUE, or PATH exists.
//
//   loras.one_line_art.rank == 4
//   datasets.one-line-art.trigger_coverage.ratio >= 1
//   lorafile.loras.one_line_art.learning_rate == 1.0e-4
//   loras.one_line_art.targets contains "attention"
//   renders.one_line_art_ab.both_arms == true
//   loras.one_line_art.file exists
//
// PATH is dot-separated keys of the facts (keys may hold '-', ':' and '_'); VALUE is a number, a
// "quoted" or 'quoted' string, true, false or null. Nothing else is accepted, so a typo is an error
// at load time, not a silently failing check.
import { didYouMean } from '../config/suggest.js';
import { canonicalJson } from '../engine/canonical.js';
import type { Json } from '../engine/types.js';

export const OPERATORS = ['==', '!=', '>=', '<=', '>', '<', 'contains', 'exists'] as const;
export type Operator = (typeof OPERATORS)[number];

export interface Expression {
  path: string[];
  op: Operator;
  /** absent for `exists` */
  value?: Json;
  text: string;
}

export class ExpressionError extends Error {
  /** 0-based offset in the expression text where the problem is */
  constructor(
    message: string,
    readonly offset: number,
    readonly length = 1,
  ) {
    super(message);
  }
}

const PATH_SEGMENT = /^[A-Za-z0-9_\-:]+$/;
const NUMBER = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

export function parseExpression(text: string): Expression {
  const leading = text.length - text.trimStart().length;
  const body = text.trim();
  if (body === '') throw new ExpressionError('empty expression: write PATH OP VALUE, e.g. `loras.my_lora.rank == 4`', 0);
  const pathEnd = body.search(/\s/);
  const pathText = pathEnd === -1 ? body : body.slice(0, pathEnd);
  const path = pathText.split('.');
  if (!path.every((segment) => PATH_SEGMENT.test(segment))) {
    throw new ExpressionError(`bad path '${pathText}': each dot-separated key must be letters, digits, '_', '-' or ':'`, leading, pathText.length);
  }
  if (pathEnd === -1) throw new ExpressionError(`'${pathText}' needs an operator: one of ${OPERATORS.join(', ')}`, leading + pathText.length);
  const rest = body.slice(pathEnd).trimStart();
  const opOffset = leading + body.length - rest.length;
  const opText = rest.split(/\s/, 1)[0];
  const op = OPERATORS.find((o) => o === opText);
  if (!op) throw new ExpressionError(`unknown operator '${opText}': use one of ${OPERATORS.join(', ')}`, opOffset, opText.length);
  const valueText = rest.slice(opText.length).trim();
  const valueOffset = opOffset + opText.length + (rest.slice(opText.length).length - rest.slice(opText.length).trimStart().length);
  if (op === 'exists') {
    if (valueText !== '') throw new ExpressionError(`'exists' takes no value (found '${valueText}')`, valueOffset, valueText.length);
    return { path, op, text };
  }
  if (valueText === '') throw new ExpressionError(`'${op}' needs a value after it: a number, a "quoted string", true, false or null`, opOffset + opText.length);
  return { path, op, value: parseValue(valueText, valueOffset), text };
}

function parseValue(text: string, offset: number): Json {
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (text === 'null') return null;
  if (NUMBER.test(text)) return Number(text);
  const quote = text[0];
  if ((quote === '"' || quote === "'") && text.length >= 2 && text.endsWith(quote)) {
    const inner = text.slice(1, -1);
    if (!inner.includes(quote)) return inner;
  }
  throw new ExpressionError(`bad value '${text}': write a number, a "quoted string", true, false or null`, offset, text.length);
}

export type Lookup = { found: true; value: Json } | { found: false; missingAt: number; available: string[] };

/** Follows the path through the facts; on a miss says where and which keys exist there. */
export function lookup(facts: Json, path: string[]): Lookup {
  let node: Json = facts;
  for (const [i, key] of path.entries()) {
    if (node !== null && typeof node === 'object' && !Array.isArray(node) && Object.prototype.hasOwnProperty.call(node, key)) {
      node = node[key];
      continue;
    }
    const available = node !== null && typeof node === 'object' && !Array.isArray(node) ? Object.keys(node).sort() : [];
    return { found: false, missingAt: i, available };
  }
  return { found: true, value: node };
}

export interface Outcome {
  passed: boolean;
  /** what was found, for the report: "rank is 4", "no fact loras.x (available: ...)" */
  message: string;
  actual?: Json;
}

export function evaluate(expr: Expression, facts: Json): Outcome {
  const found = lookup(facts, expr.path);
  const shownPath = expr.path.join('.');
  if (!found.found) {
    if (expr.op === 'exists') return { passed: false, message: `${shownPath} does not exist` };
    const where = expr.path.slice(0, found.missingAt).join('.') || '(top level)';
    const missing = expr.path[found.missingAt];
    const guess = didYouMean(missing, found.available);
    const near = found.available.length ? `available at ${where}: ${found.available.slice(0, 12).join(', ')}${found.available.length > 12 ? ', ...' : ''}` : `${where} has no keys`;
    return { passed: false, message: `no fact '${shownPath}' (${guess ? `did you mean '${guess}'?` : `no '${missing}' under ${where};`} ${near})` };
  }
  const actual = found.value;
  if (expr.op === 'exists') return { passed: actual !== null, message: actual === null ? `${shownPath} is null` : `${shownPath} exists`, actual };
  const expected = expr.value as Json;
  const passed = compare(expr.op, actual, expected);
  return { passed, message: `${shownPath} is ${show(actual)}${passed ? '' : `; expected ${expr.op} ${show(expected)}`}`, actual };
}

function compare(op: Exclude<Operator, 'exists'>, actual: Json, expected: Json): boolean {
  switch (op) {
    case '==':
      return equal(actual, expected);
    case '!=':
      return !equal(actual, expected);
    case 'contains':
      if (typeof actual === 'string') return typeof expected === 'string' && actual.includes(expected);
      if (Array.isArray(actual)) return actual.some((a) => equal(a, expected));
      if (actual !== null && typeof actual === 'object') return typeof expected === 'string' && Object.prototype.hasOwnProperty.call(actual, expected);
      return false;
    default: {
      if (typeof actual !== 'number' || typeof expected !== 'number') return false;
      if (op === '>=') return actual >= expected;
      if (op === '<=') return actual <= expected;
      if (op === '>') return actual > expected;
      return actual < expected;
    }
  }
}

/** Numbers compare with a relative tolerance of 1e-9 (1e-4 written as 0.0001 in metadata text is still equal). */
function equal(a: Json, b: Json): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
  return canonicalJson(a) === canonicalJson(b);
}

function show(v: Json): string {
  const text = typeof v === 'string' ? JSON.stringify(v) : canonicalJson(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
