// The hostile-input corpus (tests/hostile-*.test.ts): generated cases, each run with a time limit and
// sorted into what happened to it. A case is `rejected` only when it got a clear message (it names
// the file or item) and the right exit code; `accepted` when the input was in fact valid; `crashed`
// is any other failure (an exception that is not a diagnostic, exit 70, a stack trace); `hung` ran
// past its limit. Every suite asserts no crash and no hang, and prints its counts.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './cli.js';

export type Verdict = 'rejected' | 'accepted' | 'crashed' | 'hung';

export interface CaseResult {
  name: string;
  verdict: Verdict;
  detail: string;
}

export class Tally {
  readonly results: CaseResult[] = [];
  constructor(readonly suite: string) {}

  add(name: string, verdict: Verdict, detail = ''): CaseResult {
    const result = { name, verdict, detail };
    this.results.push(result);
    return result;
  }

  count(verdict: Verdict): number {
    return this.results.filter((r) => r.verdict === verdict).length;
  }

  /** "hostile lorafiles: 812 tried, 640 rejected with a clear message and exit 2, 172 accepted as valid, 0 crashed, 0 hung" */
  summary(rejectedAs: string): string {
    return `hostile ${this.suite}: ${this.results.length} tried, ${this.count('rejected')} rejected ${rejectedAs}, ${this.count('accepted')} accepted as valid, ${this.count('crashed')} crashed, ${this.count('hung')} hung`;
  }

  /** Prints the summary and appends it to $LORABUILD_HOSTILE_SUMMARY when set (for the counts). */
  report(rejectedAs: string): void {
    const line = this.summary(rejectedAs);
    console.log(line);
    const file = process.env.LORABUILD_HOSTILE_SUMMARY;
    if (file) appendFileSync(file.startsWith('/') ? file : join(REPO_ROOT, file), `${line}\n`);
  }

  failures(): CaseResult[] {
    return this.results.filter((r) => r.verdict === 'crashed' || r.verdict === 'hung');
  }
}

/** Runs `work` with a limit; a result past it is a hang. */
export async function withLimit<T>(ms: number, work: () => Promise<T>): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)));
  try {
    return await Promise.race([work(), limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** Output a terminal could act on: ESC, C1 controls, bidi overrides, or other control characters but tab/newline. */
export const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
