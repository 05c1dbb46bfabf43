// Grades facts against a rubric: every expression of a check must hold for its points.
import type { Json } from '../engine/types.js';
import { evaluate, type Expression, type Outcome } from './expression.js';
import type { Rubric } from './rubric.js';

export interface CheckOutcome {
  id: string;
  title: string;
  points: number;
  earned: number;
  passed: boolean;
  /** one line per expression: what was found, and what was expected when it failed */
  messages: string[];
}

export interface GradeReport {
  title: string;
  rubric: string;
  points: number;
  earned: number;
  passed: boolean;
  checks: CheckOutcome[];
}

/**
 * `unverified`: fact path prefixes whose values check could not verify, with the reason; an
 * expression on such a fact fails saying so (it is never graded on a value nobody checked).
 */
export function scoreRubric(rubric: Rubric, facts: Json, unverified: Record<string, string> = {}): GradeReport {
  const notVerified = (e: Expression): Outcome | undefined => {
    const path = e.path.join('.');
    const prefix = Object.keys(unverified).find((p) => path === p || path.startsWith(`${p}.`));
    return prefix === undefined ? undefined : { passed: false, message: `${path} is not verified: ${unverified[prefix]}` };
  };
  const checks = rubric.checks.map((check): CheckOutcome => {
    const outcomes = check.expect.map((e) => notVerified(e) ?? evaluate(e, facts));
    const passed = outcomes.every((o) => o.passed);
    return { id: check.id, title: check.title, points: check.points, earned: passed ? check.points : 0, passed, messages: outcomes.map((o) => o.message) };
  });
  const points = checks.reduce((sum, c) => sum + c.points, 0);
  const earned = checks.reduce((sum, c) => sum + c.earned, 0);
  return { title: rubric.title, rubric: rubric.file, points, earned, passed: checks.every((c) => c.passed), checks };
}
