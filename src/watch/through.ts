// `--through STAGE`: watch rebuilds the plan only up to a stage kind, so that saving a caption
// re-validates without starting a training. Stages past the bound (and the report) are dropped.
import type { Plan, StageKind } from '../engine/types.js';

/** pipeline order of the stage kinds; score sits with render */
const RANK: Record<string, number> = { fetch: 0, prepare: 1, validate: 2, train: 3, render: 4, score: 4, report: 5 };

export const THROUGH_KINDS = ['fetch', 'prepare', 'validate', 'train', 'render', 'report'] as const;
export type ThroughKind = (typeof THROUGH_KINDS)[number];

export function isThroughKind(value: string): value is ThroughKind {
  return (THROUGH_KINDS as readonly string[]).includes(value);
}

/** The stages of `plan` whose kind comes no later than `through` (all of them when undefined). */
export function boundPlan(plan: Plan, through: ThroughKind | undefined): Plan {
  if (through === undefined) return plan;
  const limit = RANK[through];
  const order = plan.order.filter((id) => (RANK[plan.stages.get(id)!.kind as StageKind] ?? Infinity) <= limit);
  const kept = new Set(order);
  // a kept stage never depends on a dropped one (deps come earlier in the pipeline), but check anyway
  for (const id of order) {
    for (const dep of plan.stages.get(id)!.deps) {
      if (!kept.has(dep)) throw new Error(`--through ${through}: ${id} depends on ${dep}, which comes later in the pipeline`);
    }
  }
  return { stages: new Map(order.map((id) => [id, plan.stages.get(id)!] as const)), order, selected: plan.selected };
}
