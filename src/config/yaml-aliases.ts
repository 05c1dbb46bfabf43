// YAML aliases (`*name`) in files lorabuild reads. The yaml library throws a bare ReferenceError for
// an alias without its anchor and for an "alias bomb" (aliases of aliases that expand to millions
// of nodes); these helpers find the alias concerned so the problem gets a file:line:col instead.
//
// The yaml module is passed in, so that a caller that loads it lazily (the lock reader) keeps doing so.
import type { Document, LineCounter, Node } from 'yaml';

export type YamlApi = Pick<typeof import('yaml'), 'visit' | 'isAlias'>;

/**
 * How many alias nodes a document may resolve (the yaml library's measure: uses of an anchor times
 * the aliases nested inside it). Anchors reused a few hundred times are legal; a bomb needs far more.
 */
export const MAX_ALIAS_COUNT = 1000;

/** What a document may expand to through aliases, as JSON text (a lorafile itself is at most 1 MiB). */
export const MAX_EXPANDED_CHARS = 16 * 1024 * 1024;

export interface AliasProblem {
  message: string;
  hint: string;
  line?: number;
  col?: number;
  endCol?: number;
}

interface AliasUse {
  name: string;
  node: Node;
  /** whether an anchor of that name was defined before it */
  resolved: boolean;
}

/** Every alias of the document in source order, and whether its anchor came first. */
function aliasUses(yaml: YamlApi, doc: Document): AliasUse[] {
  const anchors = new Set<string>();
  const uses: AliasUse[] = [];
  yaml.visit(doc, (_key, node) => {
    if (yaml.isAlias(node)) {
      uses.push({ name: node.source, node: node as unknown as Node, resolved: anchors.has(node.source) });
      return undefined;
    }
    const anchor = (node as { anchor?: string } | null)?.anchor;
    if (anchor) anchors.add(anchor);
    return undefined;
  });
  return uses;
}

function position(lines: LineCounter | undefined, node: Node): Pick<AliasProblem, 'line' | 'col' | 'endCol'> {
  if (!lines || !node.range) return {};
  const start = lines.linePos(node.range[0]);
  const end = lines.linePos(node.range[1]);
  return { line: start.line, col: start.col, ...(end.line === start.line && end.col > start.col ? { endCol: end.col } : {}) };
}

/**
 * The document as plain JS, or the alias problem that prevents it: an alias without an anchor
 * before it, more than MAX_ALIAS_COUNT resolved aliases, or an expansion larger than
 * MAX_EXPANDED_CHARS of JSON.
 */
export function toJsWithAliasCheck(yaml: YamlApi, doc: Document, lines?: LineCounter): { value: unknown } | { problem: AliasProblem } {
  const uses = aliasUses(yaml, doc);
  const unresolved = uses.find((u) => !u.resolved);
  if (unresolved) {
    return {
      problem: {
        message: `alias '*${unresolved.name}' has no anchor '&${unresolved.name}' before it`,
        hint: `define '&${unresolved.name}' on an earlier value, or write the value out in place of '*${unresolved.name}'`,
        ...position(lines, unresolved.node),
      },
    };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    if (!(err instanceof ReferenceError) || uses.length === 0) throw err;
    return { problem: bombProblem(uses, lines, `its aliases resolve more than ${MAX_ALIAS_COUNT} times (an "alias bomb")`) };
  }
  if (uses.length > 0) {
    let size = 0;
    try {
      size = JSON.stringify(value)?.length ?? 0;
    } catch {
      size = Infinity;
    }
    if (size > MAX_EXPANDED_CHARS) return { problem: bombProblem(uses, lines, `its aliases expand it to more than ${MAX_EXPANDED_CHARS / 1024 / 1024} MiB`) };
  }
  return { value };
}

/** Points at the first use of the most used anchor. */
function bombProblem(uses: AliasUse[], lines: LineCounter | undefined, why: string): AliasProblem {
  const counts = new Map<string, number>();
  for (const u of uses) counts.set(u.name, (counts.get(u.name) ?? 0) + 1);
  const [name, count] = [...counts].sort((a, b) => b[1] - a[1])[0];
  const first = uses.find((u) => u.name === name)!;
  return {
    message: `the file cannot be expanded: ${why}; '*${name}' is used ${count} time${count === 1 ? '' : 's'}`,
    hint: 'write the values out, or use fewer nested aliases',
    ...position(lines, first.node),
  };
}

/** The first alias of a document that must not have any (a file lorabuild writes itself). */
export function firstAlias(yaml: YamlApi, doc: Document, lines?: LineCounter): AliasProblem | undefined {
  const use = aliasUses(yaml, doc)[0];
  if (!use) return undefined;
  return { message: `alias '*${use.name}': lorabuild never writes YAML aliases here`, hint: 'the file was edited by hand', ...position(lines, use.node) };
}
