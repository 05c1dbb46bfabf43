// The pure planner: stages, edges, resources, target selection, order and the Mermaid output.
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, parseConfig } from '../src/config/load.js';
import { ConfigError } from '../src/config/errors.js';
import { formatDiagnostics } from '../src/config/format.js';
import { planStages, toMermaid } from '../src/graph/plan.js';
import type { Plan } from '../src/engine/types.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'config');
const config = await loadConfig(path.join(FIXTURES, 'valid.lorafile.yaml'));

function lines(plan: Plan): string[] {
  return plan.order.map((id) => {
    const node = plan.stages.get(id)!;
    return `${id} [${node.resource}] <- ${node.deps.join(', ')}`;
  });
}

describe('planStages', () => {
  it('plans every stage, each after its dependencies, with the report last', () => {
    const plan = planStages(config);
    expect(plan.selected).toEqual([]);
    expect(lines(plan)).toEqual([
      'fetch:pokemon [net] <- ',
      'prepare:pokemon [cpu] <- fetch:pokemon',
      'validate:pokemon [cpu] <- prepare:pokemon',
      'fetch:one-line-art [cpu] <- ',
      'prepare:one-line-art [cpu] <- fetch:one-line-art',
      'validate:one-line-art [cpu] <- prepare:one-line-art',
      'train:pokemon_lora [gpu] <- validate:pokemon, prepare:pokemon',
      'train:line_art_lora [gpu] <- validate:one-line-art, prepare:one-line-art',
      'train:line_art_more [gpu] <- validate:one-line-art, prepare:one-line-art, train:line_art_lora',
      'render:pokemon_ab [gpu] <- train:pokemon_lora, prepare:pokemon',
      'render:line_art_grid [gpu] <- train:line_art_more, prepare:one-line-art',
      'report [cpu] <- validate:pokemon, validate:one-line-art, train:pokemon_lora, train:line_art_lora, train:line_art_more, render:pokemon_ab, render:line_art_grid',
    ]);
    expect(plan.stages.get('train:pokemon_lora')).toEqual({
      id: 'train:pokemon_lora',
      kind: 'train',
      target: 'pokemon_lora',
      deps: ['validate:pokemon', 'prepare:pokemon'],
      resource: 'gpu',
    });
    expect(plan.stages.get('report')!.target).toBe('');
  });

  it('order is topological for every plan', () => {
    for (const targets of [[], ['line_art_grid'], ['pokemon', 'line_art_more'], ['report'], ['train:line_art_more', 'report']]) {
      const plan = planStages(config, targets);
      expect(plan.order.length).toBe(plan.stages.size);
      plan.order.forEach((id, i) => {
        for (const dep of plan.stages.get(id)!.deps) expect(plan.order.indexOf(dep), `${dep} before ${id}`).toBeGreaterThanOrEqual(0);
        for (const dep of plan.stages.get(id)!.deps) expect(plan.order.indexOf(dep)).toBeLessThan(i);
      });
    }
  });

  it('a render target builds its lora chain and dataset only, without a report', () => {
    const plan = planStages(config, ['line_art_grid']);
    expect(plan.selected).toEqual(['line_art_grid']);
    expect(plan.order).toEqual([
      'fetch:one-line-art',
      'prepare:one-line-art',
      'validate:one-line-art',
      'train:line_art_lora',
      'train:line_art_more',
      'render:line_art_grid',
    ]);
  });

  it('a dataset target builds fetch, prepare and validate; a stage id builds that stage', () => {
    expect(planStages(config, ['pokemon']).order).toEqual(['fetch:pokemon', 'prepare:pokemon', 'validate:pokemon']);
    expect(planStages(config, ['prepare:one-line-art']).order).toEqual(['fetch:one-line-art', 'prepare:one-line-art']);
  });

  it("'report' with other targets reports on just those; alone it plans everything", () => {
    const plan = planStages(config, ['pokemon_lora', 'report']);
    expect(plan.order).toEqual(['fetch:pokemon', 'prepare:pokemon', 'validate:pokemon', 'train:pokemon_lora', 'report']);
    expect(plan.stages.get('report')!.deps).toEqual(['validate:pokemon', 'train:pokemon_lora']);
    expect(planStages(config, ['report']).order).toEqual(planStages(config).order);
  });

  it('is deterministic and does not repeat shared dependencies', () => {
    const a = planStages(config, ['pokemon_ab', 'pokemon_lora', 'pokemon']);
    const b = planStages(config, ['pokemon_ab', 'pokemon_lora', 'pokemon']);
    expect(a.order).toEqual(b.order);
    expect(a.order).toEqual(['fetch:pokemon', 'prepare:pokemon', 'validate:pokemon', 'train:pokemon_lora', 'render:pokemon_ab']);
  });

  it('folder datasets fetch on the cpu queue, hub datasets on the net queue', () => {
    const plan = planStages(config);
    expect(plan.stages.get('fetch:pokemon')!.resource).toBe('net');
    expect(plan.stages.get('fetch:one-line-art')!.resource).toBe('cpu');
  });

  it('rejects an unknown target with a did-you-mean hint', () => {
    const err = (() => {
      try {
        planStages(config, ['pokemon_lora', 'pokemon_lorra']);
      } catch (e) {
        return e;
      }
      throw new Error('expected an error');
    })() as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(formatDiagnostics(err.diagnostics)).toBe(
      `${path.relative(process.cwd(), config.file)}: error: unknown target 'pokemon_lorra'\n` +
        "  hint: did you mean 'pokemon_lora'? targets are dataset, lora and render names: pokemon, one-line-art, pokemon_lora, line_art_lora, line_art_more, pokemon_ab, line_art_grid, report, or stage ids like train:NAME (lorabuild plan lists them)\n\n1 error\n",
    );
  });

  it('suggests the closest target of any kind, a stage id the typo begins first', () => {
    const hintFor = (target: string) => {
      try {
        planStages(config, [target]);
      } catch (e) {
        return /did you mean '([^']+)'/.exec((e as ConfigError).diagnostics[0].hint ?? '')?.[1];
      }
      throw new Error('expected an error');
    };
    expect(hintFor('train:pokemon')).toBe('train:pokemon_lora');
    expect(hintFor('render:pokemon')).toBe('render:pokemon_ab');
    expect(hintFor('line_art_lroa')).toBe('line_art_lora');
    expect(hintFor('validate:one-line-ar')).toBe('validate:one-line-art');
    expect(hintFor('pokemonn_ab')).toBe('pokemon_ab');
    expect(hintFor('reprot')).toBe('report');
    expect(hintFor('line_art')).toBe('line_art_lora'); // too far for an edit, but the start of three names: the first
    expect(hintFor('validate:one')).toBe('validate:one-line-art');
    expect(hintFor('zzz')).toBeUndefined();
  });

  it('a name used in two sections selects both', () => {
    const shared = parseConfig(
      'version: 1\nmodels: { m: { builtin: tiny } }\ndatasets: { art: { folder: art } }\nloras: { art: { model: m, dataset: art } }\n',
      'lorafile.yaml',
    );
    expect(planStages(shared, ['art']).order).toEqual(['fetch:art', 'prepare:art', 'validate:art', 'train:art']);
  });

  it('refuses a cyclic graph that skipped validation instead of looping', () => {
    const valid = parseConfig(
      'version: 1\nmodels: { m: { builtin: tiny } }\ndatasets: { d: { folder: d } }\nloras: { a: { model: m, dataset: d }, b: { model: m, dataset: d, init_from: a } }\n',
      'lorafile.yaml',
    );
    const cyclic = { ...valid, loras: { ...valid.loras, a: { ...valid.loras.a, init_from: 'b' } } };
    expect(() => planStages(cyclic)).toThrow('planner: dependency cycle train:a -> train:b -> train:a');
  });

  it('plans an empty lorafile as just the report', () => {
    const empty = parseConfig('version: 1\n', 'lorafile.yaml');
    const plan = planStages(empty);
    expect(lines(plan)).toEqual(['report [cpu] <- ']);
  });
});

describe('toMermaid', () => {
  it('draws one node per stage and one edge per dependency', () => {
    expect(toMermaid(planStages(config, ['pokemon_lora']))).toBe(
      [
        'flowchart LR',
        '  s0["fetch:pokemon"]:::net',
        '  s1["prepare:pokemon"]:::cpu',
        '  s2["validate:pokemon"]:::cpu',
        '  s3["train:pokemon_lora"]:::gpu',
        '  s0 --> s1',
        '  s1 --> s2',
        '  s2 --> s3',
        '  s1 --> s3',
        '  classDef cpu fill:#e8f0fe,stroke:#4a6fa5',
        '  classDef net fill:#e6f4ea,stroke:#3c8d5a',
        '  classDef gpu fill:#fde7e9,stroke:#b3475a',
        '',
      ].join('\n'),
    );
  });

  it('has as many edges as the plan has dependencies', () => {
    const plan = planStages(config);
    const edges = toMermaid(plan).split('\n').filter((l) => l.includes('-->')).length;
    expect(edges).toBe([...plan.stages.values()].reduce((n, s) => n + s.deps.length, 0));
  });
});
