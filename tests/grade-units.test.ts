// The pieces of `lorabuild grade` on their own: the expect grammar, rubric diagnostics, scoring,
// the JUnit/Markdown writers, and the tensor comparison behind --reproduce (real .safetensors files).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { ConfigError } from '../src/config/errors.js';
import { formatDiagnostics } from '../src/config/format.js';
import { evaluate, ExpressionError, parseExpression } from '../src/grade/expression.js';
import { escapeXml, junitXml } from '../src/grade/junit.js';
import { gradeMarkdown } from '../src/grade/markdown.js';
import { compareLoraTensors } from '../src/grade/reproduce.js';
import { parseRubric } from '../src/grade/rubric.js';
import { scoreRubric } from '../src/grade/score.js';
import { float32Tensor, writeSafetensors } from '../src/safetensors/io.js';
import { makeTempDir } from './helpers/cli.js';

const FACTS = {
  check: { status: 'ok', ok: true },
  loras: { one_line_art: { rank: 4, alpha: 4, learning_rate: 0.0001, targets: ['attention'], base_model: 'DreamShaper_8_pruned', checkpoints: [200, 400] } },
  datasets: { 'one-line-art': { items: 12, trigger_coverage: { ratio: 0.75 } } },
  renders: { ab: { both_arms: false, grid: null } },
};

describe('expect expressions', () => {
  it('parses PATH OP VALUE with numbers, strings, booleans and null', () => {
    expect(parseExpression('loras.one_line_art.rank == 4')).toMatchObject({ path: ['loras', 'one_line_art', 'rank'], op: '==', value: 4 });
    expect(parseExpression("  datasets.one-line-art.items >= 1.0e1 ")).toMatchObject({ path: ['datasets', 'one-line-art', 'items'], op: '>=', value: 10 });
    expect(parseExpression('loras.x.base_model == "Dream Shaper"').value).toBe('Dream Shaper');
    expect(parseExpression("x.y != 'a'").value).toBe('a');
    expect(parseExpression('x.y == null').value).toBeNull();
    expect(parseExpression('lock.stages.train:x.params.device == "cpu"').path).toEqual(['lock', 'stages', 'train:x', 'params', 'device']);
    const exists = parseExpression('x.file exists');
    expect([exists.op, 'value' in exists]).toEqual(['exists', false]);
  });

  it('rejects what it does not know, with the offset of the problem', () => {
    const fails = (text: string) => {
      try {
        parseExpression(text);
      } catch (err) {
        expect(err).toBeInstanceOf(ExpressionError);
        return { message: (err as ExpressionError).message, offset: (err as ExpressionError).offset };
      }
      throw new Error(`'${text}' parsed`);
    };
    expect(fails('loras.x.rank === 4')).toEqual({ message: "unknown operator '===': use one of ==, !=, >=, <=, >, <, contains, exists", offset: 13 });
    expect(fails('loras.x.rank == four').message).toBe("bad value 'four': write a number, a \"quoted string\", true, false or null");
    expect(fails('loras.x.rank == four').offset).toBe(16);
    expect(fails('loras..rank == 4').message).toContain("bad path 'loras..rank'");
    expect(fails('loras.x.rank').message).toContain('needs an operator');
    expect(fails('loras.x.rank ==').message).toContain("'==' needs a value");
    expect(fails('x exists 3').message).toContain("'exists' takes no value");
    expect(fails('x == "unterminated').message).toContain('bad value');
  });

  it('evaluates each operator over the facts', () => {
    const ok = (text: string) => evaluate(parseExpression(text), FACTS).passed;
    expect(ok('loras.one_line_art.rank == 4')).toBe(true);
    expect(ok('loras.one_line_art.rank != 4')).toBe(false);
    expect(ok('loras.one_line_art.learning_rate == 1.0e-4')).toBe(true);
    expect(ok('datasets.one-line-art.items > 11')).toBe(true);
    expect(ok('datasets.one-line-art.items < 12')).toBe(false);
    expect(ok('datasets.one-line-art.trigger_coverage.ratio >= 1')).toBe(false);
    expect(ok('datasets.one-line-art.trigger_coverage.ratio <= 0.75')).toBe(true);
    expect(ok('loras.one_line_art.targets contains "attention"')).toBe(true);
    expect(ok('loras.one_line_art.checkpoints contains 400')).toBe(true);
    expect(ok('loras.one_line_art.checkpoints contains 600')).toBe(false);
    expect(ok('loras.one_line_art.base_model contains "DreamShaper_8"')).toBe(true);
    expect(ok('loras.one_line_art exists')).toBe(true);
    expect(ok('renders.ab.grid exists')).toBe(false);
    expect(ok('renders.ab.both_arms == true')).toBe(false);
    // a string never compares as a number
    expect(evaluate(parseExpression('check.status >= 1'), FACTS).passed).toBe(false);
  });

  it('an unknown path fails with the nearby available facts', () => {
    const out = evaluate(parseExpression('loras.one_line_art.rnak == 4'), FACTS);
    expect(out.passed).toBe(false);
    expect(out.message).toBe("no fact 'loras.one_line_art.rnak' (did you mean 'rank'? available at loras.one_line_art: alpha, base_model, checkpoints, learning_rate, rank, targets)");
    expect(evaluate(parseExpression('loras.one_line_art.zzzzzzz == 4'), FACTS).message).toContain("(no 'zzzzzzz' under loras.one_line_art; available at");
    expect(evaluate(parseExpression('lora.x == 1'), FACTS).message).toContain('available at (top level): check, datasets, loras, renders');
    expect(evaluate(parseExpression('loras.one_line_art.rank == 5'), FACTS).message).toBe('loras.one_line_art.rank is 4; expected == 5');
  });
});

describe('rubric files', () => {
  const diagnosticsOf = (text: string): string => {
    try {
      parseRubric(text, 'rubric.yaml');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return formatDiagnostics((err as ConfigError).diagnostics, (err as ConfigError).source);
    }
    throw new Error('rubric parsed');
  };

  it('reads titles, points and single or listed expectations', () => {
    const rubric = parseRubric('title: Lab 3\nchecks:\n  - id: a\n    title: rank\n    points: 2\n    expect: loras.x.rank == 4\n  - id: b\n    points: 1.5\n    expect:\n      - check.ok == true\n      - "check.status == \\"ok\\""\n', 'r.yaml');
    expect(rubric.title).toBe('Lab 3');
    expect(rubric.checks.map((c) => [c.id, c.title, c.points, c.expect.length])).toEqual([
      ['a', 'rank', 2, 1],
      ['b', 'b', 1.5, 2],
    ]);
  });

  it('points at every problem: operator, value, unknown key, duplicate id, points, YAML syntax', () => {
    const text = diagnosticsOf(
      'checks:\n  - id: a\n    points: 2\n    expect: loras.x.rank === 4\n  - id: a\n    points: -1\n    expect: "x.y == nope"\n  - id: c\n    pionts: 1\n    expect: [x.y exists]\n',
    );
    expect(text).toContain("rubric.yaml:4:26: error: check 1: unknown operator '===': use one of ==, !=, >=, <=, >, <, contains, exists\n  4 |     expect: loras.x.rank === 4\n    |                          ^~~\n");
    expect(text).toContain("rubric.yaml:5:9: error: check 2: id 'a' is used twice");
    expect(text).toContain('rubric.yaml:6:13: error: check 2: `points` must be a number >= 0');
    expect(text).toContain("rubric.yaml:7:21: error: check 2: bad value 'nope'");
    expect(text).toContain("rubric.yaml:9:5: error: unknown key 'pionts' in check 3");
    expect(text).toContain("hint: did you mean 'points'?");
    expect(text).toContain('rubric.yaml:8:5: error: check 3: `points` must be a number >= 0');
    expect(diagnosticsOf('checks:\n  - id: a\n   bad: [\n')).toMatch(/^rubric\.yaml:\d+:\d+: error: /);
    expect(diagnosticsOf('- id: a\n')).toContain('a rubric is a mapping with `title` and `checks`');
    expect(diagnosticsOf('checks: []\n')).toContain('`checks` must be a non-empty list');
  });
});

describe('scores and writers', () => {
  const rubric = parseRubric(
    'title: Lab <3> & co\nchecks:\n  - id: rank\n    title: rank is 4\n    points: 2\n    expect: loras.one_line_art.rank == 4\n  - id: arms\n    title: "both | arms"\n    points: 3\n    expect: renders.ab.both_arms == true\n',
    'r.yaml',
  );
  const report = scoreRubric(rubric, FACTS);

  it('a check earns its points only when every expectation holds', () => {
    expect(report).toMatchObject({ points: 5, earned: 2, passed: false });
    expect(report.checks.map((c) => [c.id, c.passed, c.earned])).toEqual([
      ['rank', true, 2],
      ['arms', false, 0],
    ]);
  });

  it('JUnit: one testcase per check, failures carry the message, text is escaped', () => {
    const xml = junitXml(report);
    expect(xml).toContain('<testsuite name="Lab &lt;3&gt; &amp; co" tests="2" failures="1"');
    expect(xml).toContain('<testcase classname="rubric" name="rank: rank is 4 (2 pts)"/>');
    expect(xml).toContain('<failure message="renders.ab.both_arms is false; expected == true" type="rubric">');
    expect(xml.match(/<testcase /g)).toHaveLength(2);
    // control characters are shown as escapes, never sent raw into a CI log
    expect(escapeXml('a\u0000b"\'')).toBe('a\\x00b&quot;&apos;');
  });

  it('Markdown: score heading and one table row per check, pipes escaped', () => {
    const md = gradeMarkdown(report);
    expect(md.startsWith('## Lab <3> & co: 2 / 5 points ❌\n')).toBe(true);
    expect(md).toContain('| ❌ | arms: both \\| arms | 0 / 3 | renders.ab.both_arms is false; expected == true |');
  });
});

describe('tensor comparison (--reproduce)', () => {
  let tmp: { dir: string; cleanup: () => void };
  beforeAll(() => {
    tmp = makeTempDir('lorabuild-reproduce-unit-');
  });
  afterAll(() => tmp.cleanup());

  const write = async (name: string, up: number[], extra = false, metadata: Record<string, string> = {}) => {
    const file = join(tmp.dir, name);
    await writeSafetensors(
      file,
      {
        'lora_unet_a.lora_down.weight': float32Tensor([2, 2], [0.5, -0.25, 1, 2]),
        'lora_unet_a.lora_up.weight': float32Tensor([2, 2], up),
        ...(extra ? { 'lora_unet_b.alpha': float32Tensor([1], [4]) } : {}),
      },
      metadata,
    );
    return file;
  };

  it('identical tensors are identical even when the metadata differs', async () => {
    const a = await write('a.safetensors', [1, 2, 3, 4], false, { ss_training_started_at: '1' });
    const b = await write('b.safetensors', [1, 2, 3, 4], false, { ss_training_started_at: '2' });
    expect(await compareLoraTensors(a, b)).toEqual({ identical: true, maxRelativeDiff: 0, structural: [] });
  });

  it('reports the largest difference relative to the tensor scale, and structural differences', async () => {
    const a = await write('c.safetensors', [1, 2, 3, 4.2]);
    const b = await write('d.safetensors', [1, 2, 3, 4]);
    const cmp = await compareLoraTensors(a, b);
    expect(cmp.identical).toBe(false);
    expect(cmp.maxRelativeDiff).toBeCloseTo(0.05, 5);
    const e = await write('e.safetensors', [1, 2, 3, 4], true);
    // (retrained, submitted)
    expect((await compareLoraTensors(e, b)).structural).toEqual(['lora_unet_b.alpha missing from the submission']);
    expect((await compareLoraTensors(b, e)).structural).toEqual(['lora_unet_b.alpha only in the submission']);
  });
});
