// The pure planner: Config -> stage graph. No I/O; the executor decides what is fresh.
//
//   fetch:D -> prepare:D -> validate:D ─┐
//                  │                    ├─> train:L (-> train:L2 via init_from) -> render:R -> report
//                  └────────────────────┘                        render:R -> score:R (when `score:`) -> report
// A render depends on the train stages of the trained LoRAs it applies (none when all are files).
import type { Config } from '../config/schema.js';
import { trainedLoraNames } from '../config/render-loras.js';
import { ConfigError } from '../config/errors.js';
import { didYouMean } from '../config/suggest.js';
import { displayFileName } from '../config/display.js';
import type { Plan, ResourceClass, StageKind, StageNode } from '../engine/types.js';

export const REPORT_STAGE = 'report';

function stageId(kind: StageKind, target: string): string {
  return kind === 'report' ? REPORT_STAGE : `${kind}:${target}`;
}

/** Every stage of the lorafile, in document order (datasets, loras, renders, report). */
function allStages(config: Config): Map<string, StageNode> {
  const stages = new Map<string, StageNode>();
  const add = (kind: StageKind, target: string, deps: string[], resource: ResourceClass) => {
    const id = stageId(kind, target);
    stages.set(id, { id, kind, target, deps, resource });
  };
  for (const [name, dataset] of Object.entries(config.datasets)) {
    add('fetch', name, [], dataset.hub ? 'net' : 'cpu');
    add('prepare', name, [stageId('fetch', name)], 'cpu');
    add('validate', name, [stageId('prepare', name)], 'cpu');
  }
  for (const [name, lora] of Object.entries(config.loras)) {
    const deps = [stageId('validate', lora.dataset), stageId('prepare', lora.dataset)];
    if (lora.init_from) deps.push(stageId('train', lora.init_from));
    add('train', name, deps, 'gpu');
  }
  for (const [name, render] of Object.entries(config.renders)) {
    // a render reads each trained LoRA it applies; LoRA files are inputs, not stages
    const trained = trainedLoraNames(render).filter((l) => config.loras[l]);
    const prepares = [...new Set(trained.map((l) => stageId('prepare', config.loras[l].dataset)))];
    add('render', name, [...trained.map((l) => stageId('train', l)), ...prepares], 'gpu');
    if (render.score) add('score', name, [stageId('render', name), ...prepares], 'cpu');
  }
  for (const node of stages.values()) {
    for (const dep of node.deps) {
      if (!stages.has(dep)) throw new Error(`planner: ${node.id} depends on ${dep}, which the lorafile does not define (was the config validated?)`);
    }
  }
  return stages;
}

/** The stages a target name stands for: a dataset, lora or render name, a stage id, or 'report'. */
function stagesNamedBy(target: string, config: Config, stages: Map<string, StageNode>): string[] {
  const ids: string[] = [];
  if (stages.has(target)) ids.push(target);
  if (Object.hasOwn(config.datasets, target)) ids.push(stageId('validate', target));
  if (Object.hasOwn(config.loras, target)) ids.push(stageId('train', target));
  if (Object.hasOwn(config.renders, target)) ids.push(stageId(config.renders[target].score ? 'score' : 'render', target));
  return ids;
}

/**
 * The target a mistyped one most likely meant, of any kind: one it begins ('train:lineart' ->
 * 'train:lineart_lora'), else the closest by edit distance.
 */
export function closestTarget(target: string, candidates: string[]): string | undefined {
  const lower = target.toLowerCase();
  const extensions = lower.length >= 3 ? candidates.filter((c) => c.toLowerCase().startsWith(lower)) : [];
  if (extensions.length) return extensions.reduce((a, b) => (b.length < a.length ? b : a));
  return didYouMean(target, candidates);
}

function unknownTarget(target: string, config: Config, stages: Map<string, StageNode>): ConfigError {
  const names = [...Object.keys(config.datasets), ...Object.keys(config.loras), ...Object.keys(config.renders)];
  const suggestion = closestTarget(target, [...names, ...stages.keys(), REPORT_STAGE]);
  const listed = names.length <= 12 ? `: ${[...names, REPORT_STAGE].join(', ')}` : '';
  return new ConfigError([
    {
      severity: 'error',
      code: 'unknown-target',
      file: displayFileName(config.file),
      message: `unknown target '${target}'`,
      hint: `${suggestion ? `did you mean '${suggestion}'? ` : ''}targets are dataset, lora and render names${listed}, or stage ids like train:NAME (lorabuild plan lists them)`,
    },
  ]);
}

/** Depth-first post-order from the roots, visiting deps in their listed order: deterministic. */
function topologicalOrder(stages: Map<string, StageNode>, roots: string[]): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (id: string, trail: string[]) => {
    const seen = state.get(id);
    if (seen === 'done') return;
    if (seen === 'visiting') throw new Error(`planner: dependency cycle ${[...trail.slice(trail.indexOf(id)), id].join(' -> ')}`);
    state.set(id, 'visiting');
    for (const dep of stages.get(id)!.deps) visit(dep, [...trail, id]);
    state.set(id, 'done');
    order.push(id);
  };
  for (const root of roots) visit(root, []);
  return order;
}

/**
 * Plan the stages that build `targets` (default: everything, report included). Naming 'report'
 * alone plans everything too; naming it beside other targets reports on just those.
 * An unknown target throws a ConfigError with a did-you-mean hint.
 */
export function planStages(config: Config, targets: string[] = []): Plan {
  const every = allStages(config);
  const wantsReport = targets.length === 0 || targets.includes(REPORT_STAGE);
  const named = targets.filter((t) => t !== REPORT_STAGE || stagesNamedBy(t, config, every).length > 0);

  let roots: string[];
  if (named.length === 0) {
    roots = [...every.keys()];
  } else {
    roots = [];
    for (const target of named) {
      const ids = stagesNamedBy(target, config, every);
      if (ids.length === 0) throw unknownTarget(target, config, every);
      for (const id of ids) if (!roots.includes(id)) roots.push(id);
    }
  }
  const order = topologicalOrder(every, roots);
  const stages = new Map(order.map((id) => [id, every.get(id)!] as const));

  if (wantsReport) {
    const reportDeps = order.filter((id) => ['validate', 'train', 'render', 'score'].includes(stages.get(id)!.kind));
    stages.set(REPORT_STAGE, { id: REPORT_STAGE, kind: 'report', target: '', deps: reportDeps, resource: 'cpu' });
    order.push(REPORT_STAGE);
  }
  return { stages, order, selected: [...targets] };
}

/** A Mermaid flowchart of the plan (paste into Markdown). */
export function toMermaid(plan: Plan): string {
  const ids = new Map(plan.order.map((id, i) => [id, `s${i}`] as const));
  const lines = ['flowchart LR'];
  for (const id of plan.order) {
    const node = plan.stages.get(id)!;
    lines.push(`  ${ids.get(id)}["${id.replace(/"/g, '#quot;')}"]:::${node.resource}`);
  }
  for (const id of plan.order) {
    for (const dep of plan.stages.get(id)!.deps) lines.push(`  ${ids.get(dep)} --> ${ids.get(id)}`);
  }
  lines.push('  classDef cpu fill:#e8f0fe,stroke:#4a6fa5', '  classDef net fill:#e6f4ea,stroke:#3c8d5a', '  classDef gpu fill:#fde7e9,stroke:#b3475a');
  return lines.join('\n') + '\n';
}
