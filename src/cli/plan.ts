// lorabuild plan [targets...] [-f lorafile] [--json | --mermaid]: print the stage graph.
import { lorafileOption, parseCommandArgs, UsageError } from './args.js';
import { loadProjectConfig } from '../engine/project.js';
import { reportConfigError } from '../config/format.js';
import { planStages, toMermaid } from '../graph/plan.js';
import type { Plan } from '../engine/types.js';

const HELP = `usage: lorabuild plan [targets...] [-f lorafile.yaml] [--json | --mermaid]

Prints the stages that building the targets needs, in the order they run, with their
dependencies and resource class. Targets are dataset, lora and render names, stage ids
(train:NAME) or 'report'; none means everything.

  -f, --file FILE   the lorafile (default: ./lorafile.yaml)
  --json            one JSON object per stage and line: stage, kind, target, deps, resource
  --mermaid         a Mermaid flowchart
`;

function humanPlan(plan: Plan): string {
  const width = Math.max(...plan.order.map((id) => id.length));
  const lines = [`${plan.order.length} stage${plan.order.length === 1 ? '' : 's'}${plan.selected.length ? ` for ${plan.selected.join(' ')}` : ''}:`];
  plan.order.forEach((id, i) => {
    const node = plan.stages.get(id)!;
    const deps = node.deps.length ? `  <- ${node.deps.join(', ')}` : '';
    lines.push(`${String(i + 1).padStart(3)}. ${id.padEnd(width)}  ${node.resource.padEnd(3)}${deps}`);
  });
  return lines.join('\n') + '\n';
}

function jsonPlan(plan: Plan): string {
  return plan.order
    .map((id) => {
      const { kind, target, deps, resource } = plan.stages.get(id)!;
      return JSON.stringify({ stage: id, kind, target, deps, resource });
    })
    .join('\n') + '\n';
}

export async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseCommandArgs(argv, { ...lorafileOption, json: { type: 'boolean' }, mermaid: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, 'plan');
    if (args.values.json && args.values.mermaid) throw new UsageError('lorabuild plan: choose one of --json and --mermaid');
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n\n${HELP}`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  try {
    const config = await loadProjectConfig(args.values.file);
    const plan = planStages(config, args.positionals);
    process.stdout.write(args.values.json ? jsonPlan(plan) : args.values.mermaid ? toMermaid(plan) : humanPlan(plan));
    return 0;
  } catch (err) {
    return reportConfigError(err);
  }
}
