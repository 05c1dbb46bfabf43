// Turns zod issues into positioned diagnostics with messages and hints a person can act on.
import type { z } from 'zod';
import type { PathSegment } from './locate.js';
import { fieldAt, keysAt } from './schema-walk.js';
import { fieldOf, prefix, type DiagnosticSink } from './sink.js';
import { didYouMean } from './suggest.js';

type Issue = z.core.$ZodIssue;

function valueAt(raw: unknown, path: readonly PathSegment[]): unknown {
  let current = raw;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[String(segment)];
  }
  return current;
}

/** "0", "\"four\" (a string)", "a list", "nothing" */
function describeValue(value: unknown): string {
  if (value === undefined || value === null) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `${JSON.stringify(value)} (a string)`;
  return String(value);
}

const TYPE_NOUN: Record<string, string> = {
  number: 'a number',
  int: 'a whole number',
  string: 'a text value',
  boolean: 'true or false',
  object: 'a mapping (key: value lines)',
  record: 'a mapping of names to entries',
  array: 'a list',
};

function example(path: readonly PathSegment[]): string | undefined {
  const info = fieldAt(path);
  if (info?.defaultValue === undefined || typeof info.defaultValue === 'object') return undefined;
  return `${String(path[path.length - 1])}: ${String(info.defaultValue)}`;
}

function typeHint(path: readonly PathSegment[], expected: string, got: unknown): string {
  const ex = example(path);
  if (typeof got === 'string' && (expected === 'number' || expected === 'int') && got.trim() !== '' && !Number.isNaN(Number(got))) {
    return `remove the quotes: numbers are written bare${ex ? `, like '${ex}'` : ''}`;
  }
  if (expected === 'boolean' && typeof got === 'string' && /^(yes|no|on|off|y|n)$/i.test(got)) {
    return `write true or false: YAML 1.2 reads '${got}' as text`;
  }
  if (expected === 'string' && (typeof got === 'number' || typeof got === 'boolean')) return `put it in quotes: "${String(got)}"`;
  if (expected === 'array') return `write a list, like [a, b] or one '- item' per line`;
  if (expected === 'object' || expected === 'record') return `write the entries indented under '${String(path[path.length - 1] ?? 'the key')}:' as key: value lines`;
  const description = fieldAt(path)?.description;
  return [ex ? `for example '${ex}'` : undefined, description].filter(Boolean).join(' — ') || `write ${TYPE_NOUN[expected] ?? expected}`;
}

function missingKey(sink: DiagnosticSink, path: readonly PathSegment[]): void {
  const key = String(path[path.length - 1]);
  if (path.length === 1 && key === 'version') {
    sink.add({ line: 1, col: 1, endCol: 2 }, 'missing-version', "the lorafile has no 'version'", "add 'version: 1' as the first line", path);
    return;
  }
  const description = fieldAt(path)?.description;
  sink.atKey(path.slice(0, -1), 'missing-key', `${prefix(path)}missing required key '${key}'`, `add '${key}: ...'${description ? ` — ${description}` : ''}`);
}

function rangeMessage(issue: Issue & { code: 'too_small' | 'too_big' }, path: readonly PathSegment[], got: unknown): { message: string; hint: string } {
  const field = fieldOf(path);
  const small = issue.code === 'too_small';
  const bound = Number(small ? issue.minimum : issue.maximum);
  const ex = example(path);
  if (issue.origin === 'array') {
    return small
      ? { message: `${prefix(path)}${field} needs at least ${bound} item${bound === 1 ? '' : 's'}`, hint: `add ${bound === 1 ? 'an item' : 'items'}, like ${field}: [...]` }
      : { message: `${prefix(path)}${field} has more than ${bound} items`, hint: `keep at most ${bound}` };
  }
  if (issue.origin === 'string') {
    return { message: `${prefix(path)}${field} must not be empty`, hint: `give a value or delete the '${field}:' line` };
  }
  const relation = small ? (issue.inclusive ? 'at least' : 'greater than') : issue.inclusive ? 'at most' : 'less than';
  return {
    message: `${prefix(path)}${field} must be ${relation} ${bound}, got ${describeValue(got)}`,
    hint: ex ? `the default is '${ex}'` : `use a value ${relation === 'at least' || relation === 'at most' ? `of ${relation}` : relation} ${bound}`,
  };
}

function issueToDiagnostic(sink: DiagnosticSink, issue: Issue, raw: unknown): void {
  const path = issue.path.filter((s): s is PathSegment => typeof s === 'string' || typeof s === 'number');
  const got = valueAt(raw, path);
  const field = fieldOf(path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const valid = keysAt(path);
      const where = path.length === 0 ? ' at the top level' : fieldOf(path) ? ` in ${fieldOf(path)}` : '';
      for (const key of issue.keys) {
        const suggestion = didYouMean(key, valid);
        sink.atKey(
          [...path, key],
          'unknown-key',
          `${prefix(path)}unknown key '${key}'${where}`,
          suggestion ? `did you mean '${suggestion}'?` : `valid keys here: ${valid.join(', ')}`,
        );
      }
      return;
    }
    case 'invalid_type': {
      if (path.length === 0) {
        sink.add({ line: 1, col: 1, endCol: 2 }, 'not-a-mapping', 'the lorafile must be a YAML mapping of keys to values', "start with 'version: 1', then models:, datasets:, loras: and renders:", path);
        return;
      }
      if (got === undefined) return missingKey(sink, path);
      const noun = TYPE_NOUN[issue.expected] ?? issue.expected;
      sink.atValue(path, 'wrong-type', `${prefix(path)}${field} must be ${noun}, got ${describeValue(got)}`, typeHint(path, issue.expected, got));
      return;
    }
    case 'invalid_value': {
      if (path.length === 1 && path[0] === 'version') {
        if (got === undefined) return missingKey(sink, path);
        sink.atValue(path, 'unsupported-version', `unsupported lorafile version ${describeValue(got)}`, "this lorabuild reads lorafile version 1: write 'version: 1'");
        return;
      }
      const options = issue.values.map((v) => String(v));
      const suggestion = typeof got === 'string' ? didYouMean(got, options) : undefined;
      sink.atValue(
        path,
        'invalid-value',
        `${prefix(path)}${field} must be one of ${options.join(', ')}; got ${describeValue(got)}`,
        suggestion ? `did you mean '${suggestion}'?` : `pick one of ${options.join(', ')}`,
      );
      return;
    }
    case 'too_small':
    case 'too_big': {
      const { message, hint } = rangeMessage(issue, path, got);
      sink.atValue(path, 'out-of-range', message, hint);
      return;
    }
    case 'not_multiple_of': {
      const n = Number(got);
      const below = Math.floor(n / issue.divisor) * issue.divisor;
      const nearest = below === n ? below : [below, below + issue.divisor].filter((x) => x > 0).join(' or ');
      sink.atValue(path, 'not-multiple', `${prefix(path)}${field} must be a multiple of ${issue.divisor}, got ${describeValue(got)}`, `use ${nearest}`);
      return;
    }
    case 'invalid_format': {
      const shown = typeof got === 'string' ? `'${got}'` : describeValue(got);
      sink.atValue(path, 'invalid-format', `${prefix(path)}${field} ${shown} is not valid: ${issue.message}`, fieldAt(path)?.description);
      return;
    }
    case 'invalid_key': {
      const key = String(path[path.length - 1]);
      const reason = issue.issues[0]?.message ?? 'not a valid name';
      const fixed = key.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^[_.-]+/, '') || 'name';
      sink.atKey(path, 'invalid-name', `invalid ${String(path[0]).replace(/s$/, '')} name '${key}': ${reason}`, `rename it, e.g. '${fixed}'`);
      return;
    }
    default:
      sink.atValue(path, 'invalid', `${prefix(path)}${field || 'the lorafile'}: ${issue.message}`);
  }
}

export function reportSchemaIssues(sink: DiagnosticSink, issues: readonly Issue[], raw: unknown): void {
  for (const issue of issues) issueToDiagnostic(sink, issue, raw);
}
