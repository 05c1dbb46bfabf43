// Source positions of keys and values in a parsed YAML document, so every diagnostic can point at
// the exact line and column of the offending key or value.
import type { Document, LineCounter, Node, Pair } from 'yaml';
import { yamlModule } from './yaml-module.js';

export type PathSegment = string | number;

/** 1-based line and column, endCol exclusive (on the same line). */
export interface Span {
  line: number;
  col: number;
  endCol: number;
}

interface Found {
  /** the deepest node found along the path */
  node: Node | null;
  /** the key node of the deepest map entry found along the path */
  key: Node | null;
  /** whether the whole path exists */
  complete: boolean;
}

export class YamlLocator {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
    private readonly source: string,
  ) {}

  /** Position of a byte range, clipped to the line it starts on. */
  spanOfRange(start: number, end: number): Span {
    const from = this.lines.linePos(start);
    const to = this.lines.linePos(Math.max(start, end));
    const lineText = this.source.split(/\r?\n/)[from.line - 1] ?? '';
    const endCol = to.line === from.line ? to.col : lineText.length + 1;
    return { line: from.line, col: from.col, endCol: Math.max(endCol, from.col + 1) };
  }

  /** The key of the entry at `path` (e.g. the `rank` in `rank: 0`); the nearest existing ancestor when it is missing. */
  key(path: readonly PathSegment[]): Span {
    const found = this.find(path);
    if (found.key?.range) return this.spanOfRange(found.key.range[0], found.key.range[1]);
    if (found.node?.range) return this.spanOfRange(found.node.range[0], found.node.range[1]);
    return { line: 1, col: 1, endCol: 2 };
  }

  /** The value at `path` when it is a scalar or a one-line collection; otherwise its key. */
  value(path: readonly PathSegment[]): Span {
    const found = this.find(path);
    const node = found.node;
    if (found.complete && node?.range && (yamlModule().isScalar(node) || (yamlModule().isCollection(node) && node.flow))) {
      return this.spanOfRange(node.range[0], node.range[1]);
    }
    return this.key(path);
  }

  private find(path: readonly PathSegment[]): Found {
    let node: unknown = this.doc.contents;
    let key: Node | null = null;
    let deepest: Node | null = (node as Node | null) ?? null;
    for (const segment of path) {
      let next: unknown;
      if (yamlModule().isMap(node)) {
        const pair = (node.items as Pair<unknown, unknown>[]).find((p) => yamlModule().isScalar(p.key) && String(p.key.value) === String(segment));
        if (!pair) return { node: deepest, key, complete: false };
        key = pair.key as Node;
        next = pair.value;
      } else if (yamlModule().isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
        next = node.items[segment];
        key = null;
      } else {
        return { node: deepest, key, complete: false };
      }
      node = next;
      if (node && typeof node === 'object' && 'range' in node) deepest = node as Node;
    }
    return { node: (node as Node | null) ?? null, key, complete: true };
  }
}
