// `lorabuild plan` and `lorabuild schema` through the real CLI (node bin/lorabuild.js, built by tsc).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/load.js';
import { ConfigError } from '../src/config/errors.js';
import { formatDiagnostics } from '../src/config/format.js';


const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(REPO, 'bin', 'lorabuild.js');
const FIXTURES = path.join(REPO, 'tests', 'fixtures', 'config');

function lorabuild(args: string[], cwd: string) {
  const result = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A temp folder holding `lorafile.yaml` copied from a fixture. */
const projects: string[] = [];
function project(fixture: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lorabuild-plan-'));
  projects.push(dir);
  copyFileSync(fixture, path.join(dir, 'lorafile.yaml'));
  return dir;
}

afterAll(() => {
  for (const dir of projects) rmSync(dir, { recursive: true, force: true });
});

beforeAll(() => {
  if (!existsSync(path.join(REPO, 'dist', 'cli', 'plan.js'))) throw new Error('build first: npx tsc -p tsconfig.json');
});

describe('lorabuild plan', () => {
  it('prints the stages in order with resources and dependencies', () => {
    const dir = project(path.join(FIXTURES, 'valid.lorafile.yaml'));
    const { code, stdout, stderr } = lorabuild(['plan', 'pokemon_ab'], dir);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toBe(
      [
        '5 stages for pokemon_ab:',
        '  1. fetch:pokemon       net',
        '  2. prepare:pokemon     cpu  <- fetch:pokemon',
        '  3. validate:pokemon    cpu  <- prepare:pokemon',
        '  4. train:pokemon_lora  gpu  <- validate:pokemon, prepare:pokemon',
        '  5. render:pokemon_ab   gpu  <- train:pokemon_lora, prepare:pokemon',
        '',
      ].join('\n'),
    );
  });

  it('--json prints one object per stage and line, in order', () => {
    const dir = project(path.join(FIXTURES, 'valid.lorafile.yaml'));
    const { code, stdout } = lorabuild(['plan', '--json', '-f', 'lorafile.yaml'], dir);
    expect(code).toBe(0);
    const stages = stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(stages).toHaveLength(12);
    expect(stages[0]).toEqual({ stage: 'fetch:pokemon', kind: 'fetch', target: 'pokemon', deps: [], resource: 'net' });
    expect(stages.at(-1)).toMatchObject({ stage: 'report', kind: 'report', resource: 'cpu' });
    expect(stages.find((s) => s.stage === 'train:line_art_more').deps).toEqual(['validate:one-line-art', 'prepare:one-line-art', 'train:line_art_lora']);
  });

  it('--mermaid prints a flowchart', () => {
    const dir = project(path.join(FIXTURES, 'valid.lorafile.yaml'));
    const { code, stdout } = lorabuild(['plan', 'pokemon', '--mermaid'], dir);
    expect(code).toBe(0);
    expect(stdout.split('\n').slice(0, 6)).toEqual(['flowchart LR', '  s0["fetch:pokemon"]:::net', '  s1["prepare:pokemon"]:::cpu', '  s2["validate:pokemon"]:::cpu', '  s0 --> s1', '  s1 --> s2']);
  });

  it('exits 2 with the positioned diagnostic, source line, marker and hint', () => {
    const dir = project(path.join(FIXTURES, 'invalid', 'unknown-key-with-did-you-mean.yaml'));
    const { code, stdout, stderr } = lorabuild(['plan'], dir);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toBe(`lorafile.yaml:12:5: error: lora 'l': unknown key 'learning_rte'
  12 |     learning_rte: 1.0e-4
     |     ^~~~~~~~~~~~
  hint: did you mean 'learning_rate'?

1 error
`);
  });

  it('exits 2 for every invalid lorafile fixture and prints exactly what the loader diagnoses', () => {
    const files = readdirSync(path.join(FIXTURES, 'invalid')).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(20);
    for (const file of files) {
      const dir = project(path.join(FIXTURES, 'invalid', file));
      const { code, stderr } = lorabuild(['plan'], dir);
      const source = readFileSync(path.join(dir, 'lorafile.yaml'), 'utf8');
      let expected = '';
      try {
        parseConfig(source, 'lorafile.yaml');
      } catch (err) {
        expected = formatDiagnostics((err as ConfigError).diagnostics, source);
      }
      expect(expected, file).toMatch(/^lorafile\.yaml:\d+:\d+: error: /);
      expect({ file, code, stderr }).toEqual({ file, code: 2, stderr: expected });
    }
  }, 180_000);

  it('the invalid lorafile is left untouched', () => {
    const dir = project(path.join(FIXTURES, 'broken.lorafile.yaml'));
    const before = readFileSync(path.join(dir, 'lorafile.yaml'), 'utf8');
    expect(lorabuild(['plan'], dir).code).toBe(2);
    expect(readFileSync(path.join(dir, 'lorafile.yaml'), 'utf8')).toBe(before);
    expect(readdirSync(dir)).toEqual(['lorafile.yaml']);
  });

  it('exits 2 for an unknown target, a missing lorafile and a bad option', () => {
    const dir = project(path.join(FIXTURES, 'valid.lorafile.yaml'));
    const target = lorabuild(['plan', 'pokemom'], dir);
    expect(target.code).toBe(2);
    expect(target.stderr).toBe("lorafile.yaml: error: unknown target 'pokemom'\n  hint: did you mean 'pokemon'? targets are dataset, lora and render names: pokemon, one-line-art, pokemon_lora, line_art_lora, line_art_more, pokemon_ab, line_art_grid, report, or stage ids like train:NAME (lorabuild plan lists them)\n\n1 error\n");

    const missing = lorabuild(['plan', '-f', 'nope.yaml'], dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('nope.yaml: error: lorafile not found\n  hint: run lorabuild in the folder that holds lorafile.yaml, or name the file with -f PATH\n\n1 error\n');

    const option = lorabuild(['plan', '--jsn'], dir);
    expect(option.code).toBe(2);
    expect(option.stderr).toMatch(/^lorabuild plan: unknown option '--jsn'; did you mean '--json'\?\n\nusage: lorabuild plan /);

    const both = lorabuild(['plan', '--json', '--mermaid'], dir);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/^lorabuild plan: choose one of --json and --mermaid/);
  });
});

describe('lorabuild schema', () => {
  it('prints a JSON Schema with every lorafile field and its description', () => {
    const { code, stdout } = lorabuild(['schema'], os.tmpdir());
    expect(code).toBe(0);
    const schema = JSON.parse(stdout);
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema.required).toEqual(['version']);
    expect(schema.properties.version.const).toBe(1);
    const lora = schema.properties.loras.additionalProperties;
    expect(lora.required).toEqual(['model', 'dataset']);
    expect(lora.additionalProperties).toBe(false);
    expect(lora.properties.learning_rate).toMatchObject({ type: 'number', default: 0.0001, exclusiveMinimum: 0 });
    expect(lora.properties.steps).toMatchObject({ type: 'integer', default: 1000, description: 'Optimizer steps to train (training_steps in the lab node).' });
    expect(lora.properties.checkpoint_every.description).toBe('Save a checkpoint LoRA every N steps (checkpointing_steps in the lab node). Default: 200, or steps when steps is smaller.');
    expect(Object.keys(schema.properties.models.additionalProperties.properties)).toEqual(expect.arrayContaining(['checkpoint', 'hub', 'file', 'builtin']));
    expect(schema.properties.datasets.additionalProperties.properties.rules.properties.max_tokens.default).toBe(75);
    const render = schema.properties.renders.additionalProperties.properties;
    expect(render.sampler.enum).toEqual([
      'euler', 'euler_ancestral', 'heun', 'dpm_2', 'dpm_2_ancestral', 'lms', 'dpmpp_2s_ancestral', 'dpmpp_2m', 'ddim', 'lcm', 'ipndm', 'ddpm',
      'euler_a', 'dpmpp_2m_karras',
    ]);
    expect(render.scheduler.enum).toEqual(['normal', 'karras', 'exponential', 'sgm_uniform', 'simple', 'ddim_uniform', 'beta']);
    expect(render.denoise).toMatchObject({ type: 'number', maximum: 1, default: 1 });
    expect(schema.properties.loras.propertyNames.pattern).toBe('^[A-Za-z0-9][A-Za-z0-9_.-]*$');
  });

  it('describes every field, and says the default of every optional one', () => {
    const schema = JSON.parse(lorabuild(['schema'], os.tmpdir()).stdout);
    const problems: string[] = [];
    let fields = 0;
    const walk = (node: Record<string, any>, at: string) => {
      const required: string[] = node.required ?? [];
      for (const [key, field] of Object.entries<Record<string, any>>(node.properties ?? {})) {
        const path = `${at}${key}`;
        fields++;
        const text: string = field.description ?? '';
        if (!text) problems.push(`${path}: no description`);
        else if (required.includes(key) ? !/Required\.$/.test(text) : !('default' in field) && !/(Default: |No default)/.test(text)) problems.push(`${path}: its default is not said`);
        walk(field, `${path}.`);
      }
      if (node.additionalProperties && typeof node.additionalProperties === 'object') walk(node.additionalProperties, `${at}*.`);
    };
    walk(schema, '');
    expect(problems).toEqual([]);
    expect(fields).toBeGreaterThan(70);
  });

  it('-o writes the schema file atomically; extra arguments are a usage error', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lb-schema-'));
    projects.push(dir);
    const written = lorabuild(['schema', '-o', 'lorafile.schema.json'], dir);
    expect(written.code).toBe(0);
    expect(written.stderr).toBe('wrote lorafile.schema.json\n');
    expect(readFileSync(path.join(dir, 'lorafile.schema.json'), 'utf8')).toBe(lorabuild(['schema'], dir).stdout);
    expect(readdirSync(dir)).toEqual(['lorafile.schema.json']);
    const extra = lorabuild(['schema', 'out.json'], dir);
    expect(extra.code).toBe(2);
    expect(extra.stderr).toMatch(/^lorabuild schema: unexpected argument 'out.json'\n\nusage: lorabuild schema/);
  });
});
