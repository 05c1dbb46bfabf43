// A string that remembers, for every UTF-16 unit, which range of the original text it came from.
// Text cleaning rewrites the caption (entities, quotes, whitespace, case) but token spans must
// still point into the caption file the user edits.

export class MappedText {
  private constructor(
    readonly text: string,
    /** per unit of `text`: start offset in the original (null: the identity, built on demand) */
    private startsOrNull: Int32Array | null,
    /** per unit of `text`: end offset (exclusive) in the original */
    private endsOrNull: Int32Array | null,
  ) {}

  /** The identity mapping; most captions never need the arrays. */
  static of(text: string): MappedText {
    return new MappedText(text, null, null);
  }

  private get starts(): Int32Array {
    if (this.startsOrNull === null) this.materialize();
    return this.startsOrNull!;
  }

  private get ends(): Int32Array {
    if (this.endsOrNull === null) this.materialize();
    return this.endsOrNull!;
  }

  private materialize(): void {
    const n = this.text.length;
    const starts = new Int32Array(n);
    const ends = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      starts[i] = i;
      ends[i] = i + 1;
    }
    this.startsOrNull = starts;
    this.endsOrNull = ends;
  }

  /** Same mapping, new text of the same length (e.g. ASCII lower-casing). */
  withSameLength(text: string): MappedText {
    if (text.length !== this.text.length) throw new Error('withSameLength: length differs');
    return new MappedText(text, this.startsOrNull, this.endsOrNull);
  }

  /**
   * Replace every match of `pattern` (must have the g flag) by `replace(match)`; null keeps the
   * match. Each unit of a replacement maps to the whole original range of the matched units.
   */
  rewrite(pattern: RegExp, replace: (match: RegExpExecArray) => string | null): MappedText {
    pattern.lastIndex = 0;
    const text = this.text;
    let out = '';
    const starts: number[] = [];
    const ends: number[] = [];
    let copiedUpTo = 0;
    let changed = false;
    for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) {
      const from = m.index;
      const to = from + m[0].length;
      if (to === from) {
        pattern.lastIndex++;
        continue;
      }
      const replacement = replace(m);
      if (replacement === null || replacement === m[0]) continue;
      changed = true;
      this.copyUnits(copiedUpTo, from, starts, ends);
      out += text.slice(copiedUpTo, from) + replacement;
      const start = this.starts[from];
      const end = this.ends[to - 1];
      for (let i = 0; i < replacement.length; i++) {
        starts.push(start);
        ends.push(end);
      }
      copiedUpTo = to;
    }
    if (!changed) return this;
    this.copyUnits(copiedUpTo, text.length, starts, ends);
    out += text.slice(copiedUpTo);
    return new MappedText(out, Int32Array.from(starts), Int32Array.from(ends));
  }

  /** The original range covered by units [from, to) of the current text. */
  originalRange(from: number, to: number): [number, number] {
    if (this.startsOrNull === null) return [from, to];
    return [this.starts[from], this.ends[to - 1]];
  }

  private copyUnits(from: number, to: number, starts: number[], ends: number[]): void {
    for (let i = from; i < to; i++) {
      starts.push(this.starts[i]);
      ends.push(this.ends[i]);
    }
  }
}
