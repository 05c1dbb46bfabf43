// Every lorafile diagnostic, asserted on its full printed text: position, message, source line,
// marker and hint.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, parseConfig } from '../src/config/load.js';
import { ConfigError } from '../src/config/errors.js';
import { formatDiagnostics } from '../src/config/format.js';
import { renderLoraEntries, renderModelName } from '../src/config/render-loras.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'config');

/** A lorafile with one model and one dataset, plus the given loras section body (and anything after it). */
function lorafile(loras: string): string {
  return `version: 1
models:
  ds8:
    checkpoint: models/ds8.safetensors
datasets:
  pokemon:
    hub: svjack/pokemon-blip-captions-en-zh
loras:
${loras}`;
}

/** The printed diagnostics of a lorafile that must fail to load. */
function diagnose(source: string): string {
  try {
    parseConfig(source, 'lorafile.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return formatDiagnostics(err.diagnostics, err.source);
    throw err;
  }
  throw new Error('expected the lorafile to be rejected');
}

describe('lorafile diagnostics', () => {
  it("yaml syntax: unclosed flow sequence", () => {
    expect(diagnose(`version: 1
renders:
  r:
    prompts: [1, 2
`)).toBe(`lorafile.yaml:4:18: error: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]
  4 |     prompts: [1, 2
    |                  ^
  hint: close it with ']', or indent its continuation lines deeper than its key

1 error
`);
  });

  it("yaml syntax: tab indentation", () => {
    expect(diagnose(`version: 1
models:
	ds8: {}
`)).toBe(`lorafile.yaml:3:1: error: YAML syntax error: Tabs are not allowed as indentation
  3 | 	ds8: {}
    | ^
  hint: YAML does not allow tabs for indentation: indent with spaces

1 error
`);
  });

  it("yaml syntax: nested mapping on one line", () => {
    expect(diagnose(`version: 1
out: a: b
`)).toBe(`lorafile.yaml:2:6: error: YAML syntax error: Nested mappings are not allowed in compact mappings
  2 | out: a: b
    |      ^
  hint: check the indentation, and quote values that contain ': '

1 error
`);
  });

  it("unknown key with did-you-mean", () => {
    expect(diagnose(lorafile(`  l:
    model: ds8
    dataset: pokemon
    learning_rte: 1.0e-4
`))).toBe(`lorafile.yaml:12:5: error: lora 'l': unknown key 'learning_rte'
  12 |     learning_rte: 1.0e-4
     |     ^~~~~~~~~~~~
  hint: did you mean 'learning_rate'?

1 error
`);
  });

  it("unknown top-level key", () => {
    expect(diagnose(`version: 1
lora: {}
`)).toBe(`lorafile.yaml:2:1: error: unknown key 'lora' at the top level
  2 | lora: {}
    | ^~~~
  hint: did you mean 'loras'?

1 error
`);
  });

  it("unknown key without a close match lists the valid keys", () => {
    expect(diagnose(`version: 1
datasets:
  d:
    folder: data
    rules:
      zzz: error
`)).toBe(`lorafile.yaml:6:7: error: dataset 'd': unknown key 'zzz' in rules
  6 |       zzz: error
    |       ^~~
  hint: valid keys here: max_tokens, min_size, max_aspect, duplicates, missing_caption, missing_image, numbering, extension, empty_caption, encoding, whitespace, too_long, trigger_missing, duplicate_image, duplicate_caption, undecodable, too_small, aspect

1 error
`);
  });

  it("types and ranges", () => {
    expect(diagnose(lorafile(`  l:
    model: ds8
    dataset: pokemon
    rank: 0
    learning_rate: -1.0e-4
    steps: 100
    checkpoint_every: 200
    resolution: 500
    batch_size: "2"
    targets: atention
`))).toBe(`lorafile.yaml:12:11: error: lora 'l': rank must be at least 1, got 0
  12 |     rank: 0
     |           ^
  hint: the default is 'rank: 4'

lorafile.yaml:13:20: error: lora 'l': learning_rate must be greater than 0, got -0.0001
  13 |     learning_rate: -1.0e-4
     |                    ^~~~~~~
  hint: the default is 'learning_rate: 0.0001'

lorafile.yaml:15:23: error: lora 'l': checkpoint_every (200) is larger than steps (100)
  15 |     checkpoint_every: 200
     |                       ^~~
  hint: set checkpoint_every to at most 100, or raise steps

lorafile.yaml:16:17: error: lora 'l': resolution must be a multiple of 8, got 500
  16 |     resolution: 500
     |                 ^~~
  hint: use 496 or 504

lorafile.yaml:17:17: error: lora 'l': batch_size must be a number, got "2" (a string)
  17 |     batch_size: "2"
     |                 ^~~
  hint: remove the quotes: numbers are written bare, like 'batch_size: 1'

lorafile.yaml:18:14: error: lora 'l': targets must be one of attention, attention+proj, all-linear; got "atention" (a string)
  18 |     targets: atention
     |              ^~~~~~~~
  hint: did you mean 'attention'?

6 errors
`);
  });

  it("checkpoint_every above the default steps", () => {
    expect(diagnose(lorafile(`  l:
    model: ds8
    dataset: pokemon
    checkpoint_every: 1500
`))).toBe(`lorafile.yaml:12:23: error: lora 'l': checkpoint_every (1500) is larger than steps (1000)
  12 |     checkpoint_every: 1500
     |                       ^~~~
  hint: set checkpoint_every to at most 1000, or raise steps

1 error
`);
  });

  it('checkpoint_every defaults to 200, or to steps when there are fewer (a short lorafile is valid)', () => {
    const config = parseConfig(lorafile(`  short: { model: ds8, dataset: pokemon, steps: 50 }
  lab: { model: ds8, dataset: pokemon }
  exact: { model: ds8, dataset: pokemon, steps: 200 }
  own: { model: ds8, dataset: pokemon, steps: 50, checkpoint_every: 10 }
`), 'lorafile.yaml');
    expect(Object.fromEntries(Object.entries(config.loras).map(([n, l]) => [n, l.checkpoint_every]))).toEqual({ short: 50, lab: 200, exact: 200, own: 10 });
    // a render may ask for the checkpoint at the final step of a short lora
    expect(() => parseConfig(lorafile(`  short: { model: ds8, dataset: pokemon, steps: 50 }
renders:
  r: { lora: short, prompts: [a], checkpoints: [50] }
`), 'lorafile.yaml')).not.toThrow();
  });

  it("dangling references", () => {
    expect(diagnose(lorafile(`  l:
    model: ds9
    dataset: pokemom
    init_from: m
renders:
  r:
    lora: ll
    prompts: [x]
`))).toBe(`lorafile.yaml:10:12: error: lora 'l': model 'ds9' is not defined in models
  10 |     model: ds9
     |            ^~~
  hint: did you mean 'ds8'?

lorafile.yaml:11:14: error: lora 'l': dataset 'pokemom' is not defined in datasets
  11 |     dataset: pokemom
     |              ^~~~~~~
  hint: did you mean 'pokemon'?

lorafile.yaml:12:16: error: lora 'l': init_from 'm' is not defined in loras
  12 |     init_from: m
     |                ^
  hint: defined loras: l

lorafile.yaml:15:11: error: render 'r': lora 'll' is not defined in loras
  15 |     lora: ll
     |           ^~
  hint: did you mean 'l'?

4 errors
`);
  });

  it("duplicate names and keys", () => {
    expect(diagnose(lorafile(`  l:
    model: ds8
    dataset: pokemon
    rank: 4
    rank: 8
  l:
    model: ds8
    dataset: pokemon
`))).toBe(`lorafile.yaml:13:5: error: duplicate key 'rank' in lora 'l' (first defined on line 12)
  13 |     rank: 8
     |     ^~~~
  hint: keep only one of them

lorafile.yaml:14:3: error: duplicate lora name 'l' (first defined on line 9)
  14 |   l:
     |   ^
  hint: rename one of them: names must be unique

2 errors
`);
  });

  it("init_from cycles", () => {
    expect(diagnose(lorafile(`  a:
    model: ds8
    dataset: pokemon
    init_from: b
  b:
    model: ds8
    dataset: pokemon
    init_from: a
  c:
    model: ds8
    dataset: pokemon
    init_from: c
`))).toBe(`lorafile.yaml:12:16: error: init_from cycle: a -> b -> a
  12 |     init_from: b
     |                ^
  hint: a lora cannot start from itself, directly or through others: remove init_from from one of them

lorafile.yaml:20:16: error: lora 'c' starts from itself (init_from: c)
  20 |     init_from: c
     |                ^
  hint: a lora cannot start from itself, directly or through others: remove init_from from one of them

2 errors
`);
  });

  it("init_from with another rank", () => {
    expect(diagnose(lorafile(`  a:
    model: ds8
    dataset: pokemon
  b:
    model: ds8
    dataset: pokemon
    init_from: a
    rank: 8
`))).toBe(`lorafile.yaml:15:16: error: lora 'b' starts from lora 'a', but their rank differs (8 vs 4)
  15 |     init_from: a
     |                ^
  hint: use the same rank in both, or remove init_from

1 error
`);
  });

  it("model sources", () => {
    expect(diagnose(`version: 1
models:
  none: {}
  two:
    builtin: tiny
    checkpoint: x.safetensors
  diffusers:
    hub: stable-diffusion-v1-5/stable-diffusion-v1-5
  pickle:
    checkpoint: old.ckpt
  hubpickle:
    hub: someone/sd15
    file: v1-5-pruned.ckpt
`)).toBe(`lorafile.yaml:3:3: error: model 'none' has no source
  3 |   none: {}
    |   ^~~~
  hint: give exactly one of 'checkpoint: PATH.safetensors' (or a diffusers folder), 'hub: owner/name' (a diffusers repo, or with 'file:' one checkpoint of it), or 'builtin: tiny'

lorafile.yaml:5:5: error: model 'two' has both checkpoint and builtin
  5 |     builtin: tiny
    |     ^~~~~~~
  hint: keep only one of checkpoint, builtin

lorafile.yaml:10:17: error: model 'pickle': old.ckpt is a pickle file, and loading a pickle can run code from it
  10 |     checkpoint: old.ckpt
     |                 ^~~~~~~~
  hint: convert it to .safetensors, or add 'allow_pickle: true' if you trust where it came from

lorafile.yaml:13:11: error: model 'hubpickle': v1-5-pruned.ckpt is a pickle file, and loading a pickle can run code from it
  13 |     file: v1-5-pruned.ckpt
     |           ^~~~~~~~~~~~~~~~
  hint: convert it to .safetensors, or add 'allow_pickle: true' if you trust where it came from

4 errors
`);
  });

  it("dataset sources", () => {
    expect(diagnose(`version: 1
datasets:
  none: {}
  both:
    folder: data
    hub: a/b
`)).toBe(`lorafile.yaml:3:3: error: dataset 'none' has no source
  3 |   none: {}
    |   ^~~~
  hint: give 'folder: PATH' (a local dataset) or 'hub: owner/name' (a Hugging Face dataset)

lorafile.yaml:6:5: error: dataset 'both' has both folder and hub
  6 |     hub: a/b
    |     ^~~
  hint: keep only one of them

2 errors
`);
  });

  it("render checkpoints", () => {
    expect(diagnose(lorafile(`  l:
    model: ds8
    dataset: pokemon
    steps: 1000
    checkpoint_every: 200
renders:
  r:
    lora: l
    prompts: [x]
    checkpoints: [200, 300, 1000, 1200]
  r2:
    lora: l
    prompts: [x]
    columns: checkpoint
`))).toBe(`lorafile.yaml:18:24: error: render 'r': lora 'l' saves no checkpoint at step 300 (it saves every 200 steps)
  18 |     checkpoints: [200, 300, 1000, 1200]
     |                        ^~~
  hint: use a multiple of 200 such as 200 or 400, or the final step 1000

lorafile.yaml:18:35: error: render 'r': checkpoint 1200 is beyond the 1000 training steps of lora 'l'
  18 |     checkpoints: [200, 300, 1000, 1200]
     |                                   ^~~~
  hint: use a step of at most 1000

lorafile.yaml:22:14: error: render 'r2': columns 'checkpoint' needs a checkpoints list
  22 |     columns: checkpoint
     |              ^~~~~~~~~~
  hint: add 'checkpoints: [...]' with the training steps to show

3 errors
`);
  });

  it('render LoRA lists: one source per entry, a base model, references, checkpoints and score need a trained LoRA', () => {
    const source = readFileSync(path.join(FIXTURES, 'invalid', 'render-loras.yaml'), 'utf8');
    expect(diagnose(source)).toBe(`lorafile.yaml:15:5: error: render 'both' has both lora and loras
  15 |     loras:
     |     ^~~~~
  hint: keep one: move 'lora: l' into the list as '- { lora: l }'

lorafile.yaml:18:3: error: render 'none' applies no LoRA
  18 |   none:
     |   ^~~~
  hint: add 'loras:' with '- { file: PATH.safetensors }' or '- { lora: NAME }' entries, or 'lora: NAME'

lorafile.yaml:22:12: error: render 'entries': model 'ds9' is not defined in models
  22 |     model: ds9
     |            ^~~
  hint: did you mean 'ds8'?

lorafile.yaml:24:9: error: render 'entries': loras[0] names no LoRA
  24 |       - { strength_model: 0.5 }
     |         ^~~~~~~~~~~~~~~~~~~~~~~
  hint: give 'file: PATH.safetensors' (a LoRA file), 'hub: owner/name' with 'file:' (a file of a Hub repo) or 'lora: NAME' (a LoRA this lorafile trains)

lorafile.yaml:25:32: error: render 'entries': loras[1] has both file and lora
  25 |       - { file: a.safetensors, lora: l }
     |                                ^~~~
  hint: keep only one of them: one entry is one LoRA

lorafile.yaml:26:17: error: render 'entries': lora 'm' is not defined in loras
  26 |       - { lora: m, strength_clip: 200 }
     |                 ^
  hint: defined loras: l

lorafile.yaml:26:35: error: render 'entries': loras[2].strength_clip must be at most 100, got 200
  26 |       - { lora: m, strength_clip: 200 }
     |                                   ^~~
  hint: the default is 'strength_clip: 1'

lorafile.yaml:28:3: error: render 'files_only' needs 'model:': its LoRAs are files, so nothing names the base model
  28 |   files_only:
     |   ^~~~~~~~~~
  hint: add 'model: NAME' with one of the models: ds8

lorafile.yaml:32:5: error: render 'files_only': checkpoints: walks the training checkpoints of one trained LoRA, and this render applies none
  32 |     checkpoints: [200]
     |     ^~~~~~~~~~~
  hint: add a '- { lora: NAME }' entry, or remove checkpoints:

lorafile.yaml:33:5: error: render 'files_only': score: compares cells with the training images of a trained LoRA, and this render applies none
  33 |     score: { clip: models/clip }
     |     ^~~~~
  hint: add a '- { lora: NAME }' entry, or remove score:

10 errors
`);
  });

  it('render LoRA lists: entries get both strengths (default 1) and the base model comes from model: or the trained LoRA', () => {
    const config = parseConfig(lorafile(`  l: { model: ds8, dataset: pokemon }
renders:
  files:
    model: ds8
    loras:
      - { file: ~/ComfyUI/models/loras/80s_offset.safetensors, strength_model: 0.8, strength_clip: -0.5 }
      - { lora: l }
      - { hub: lab/eighties, file: 80s_offset.safetensors, strength_clip: 0 }
    prompts: ["80s, a man in a suit"]
  short:
    lora: l
    prompts: [x]
`), 'lorafile.yaml');
    expect(config.renders.files.loras).toEqual([
      { file: '~/ComfyUI/models/loras/80s_offset.safetensors', strength_model: 0.8, strength_clip: -0.5, ignore_unknown_keys: false },
      { lora: 'l', strength_model: 1, strength_clip: 1, ignore_unknown_keys: false },
      { hub: 'lab/eighties', file: '80s_offset.safetensors', strength_model: 1, strength_clip: 0, ignore_unknown_keys: false },
    ]);
    expect(renderLoraEntries(config.renders.files)[2]).toEqual({ kind: 'hub', hub: 'lab/eighties', file: '80s_offset.safetensors', revision: 'main', strength_model: 1, strength_clip: 0, ignore_unknown_keys: false, at: ['loras', 2] });
    expect(renderLoraEntries(config.renders.short)).toEqual([{ kind: 'lora', lora: 'l', strength_model: 1, strength_clip: 1, ignore_unknown_keys: false, at: ['lora'] }]);
    expect([renderModelName(config, config.renders.files), renderModelName(config, config.renders.short)]).toEqual(['ds8', 'ds8']);
  });

  it("missing version", () => {
    expect(diagnose(`models: {}
`)).toBe(`lorafile.yaml:1:1: error: the lorafile has no 'version'
  1 | models: {}
    | ^
  hint: add 'version: 1' as the first line

1 error
`);
  });

  it("unsupported version", () => {
    expect(diagnose(`version: 2
`)).toBe(`lorafile.yaml:1:10: error: unsupported lorafile version 2
  1 | version: 2
    |          ^
  hint: this lorabuild reads lorafile version 1: write 'version: 1'

1 error
`);
  });

  it("missing required key", () => {
    expect(diagnose(lorafile(`  l:
    dataset: pokemon
`))).toBe(`lorafile.yaml:9:3: error: lora 'l': missing required key 'model'
  9 |   l:
    |   ^
  hint: add 'model: ...' — a name under models:, the base model to train on (ckpt_name in the lab node)

1 error
`);
  });

  it("invalid entry name", () => {
    expect(diagnose(`version: 1
models:
  my model:
    builtin: tiny
`)).toBe(`lorafile.yaml:3:3: error: invalid model name 'my model': names use letters, digits, _ . - and start with a letter or digit
  3 |   my model:
    |   ^~~~~~~~
  hint: rename it, e.g. 'my_model'

1 error
`);
  });

  it("empty lorafile", () => {
    expect(diagnose(``)).toBe(`lorafile.yaml:1:1: error: the lorafile must be a YAML mapping of keys to values
  1 | 
    | ^
  hint: start with 'version: 1', then models:, datasets:, loras: and renders:

1 error
`);
  });

  it("empty prompts list", () => {
    expect(diagnose(lorafile(`  l:
    model: ds8
    dataset: pokemon
renders:
  r:
    lora: l
    prompts: []
`))).toBe(`lorafile.yaml:15:14: error: render 'r': prompts needs at least 1 item
  15 |     prompts: []
     |              ^~
  hint: add an item, like prompts: [...]

1 error
`);
  });

  it("a list where a mapping belongs", () => {
    expect(diagnose(`version: 1
loras: [a, b]
`)).toBe(`lorafile.yaml:2:8: error: loras must be a mapping of names to entries, got a list
  2 | loras: [a, b]
    |        ^~~~~~
  hint: write the entries indented under 'loras:' as key: value lines

1 error
`);
  });

  it('values in lists, flow mappings and nested rules', () => {
    const source = readFileSync(path.join(FIXTURES, 'invalid', 'values-in-lists-flow-maps-and-rules.yaml'), 'utf8');
    expect(diagnose(source)).toBe(`lorafile.yaml:3:29: error: model 'm': seed must be at least 0, got -1
  3 |   m: { builtin: tiny, seed: -1 }
    |                             ^~
  hint: the default is 'seed: 0'

lorafile.yaml:6:10: error: dataset 'd': hub 'pokemon' is not valid: hub datasets look like owner/name
  6 |     hub: pokemon
    |          ^~~~~~~
  hint: a Hugging Face dataset repo, owner/name (dataset_path in the lab node). Give folder or hub

lorafile.yaml:8:19: error: dataset 'd': rules.duplicates must be one of error, warning, off; got "eror" (a string)
  8 |       duplicates: eror
    |                   ^~~~
  hint: did you mean 'error'?

lorafile.yaml:13:11: error: lora 'l': flip must be true or false, got "yes" (a string)
  13 |     flip: yes
     |           ^~~
  hint: write true or false: YAML 1.2 reads 'yes' as text

lorafile.yaml:14:14: error: lora 'l': publish must not be empty
  14 |     publish: ""
     |              ^~
  hint: give a value or delete the 'publish:' line

lorafile.yaml:18:20: error: render 'r': prompts[1] must be a text value, got 3
  18 |     prompts: ["a", 3]
     |                    ^
  hint: put it in quotes: "3"

lorafile.yaml:19:16: error: render 'r': seeds[1] must be at least 0, got -2
  19 |     seeds: [0, -2]
     |                ^~
  hint: use a value of at least 0

lorafile.yaml:20:20: error: render 'r': strengths[1] must be at most 10, got 11
  20 |     strengths: [0, 11]
     |                    ^~
  hint: use a value of at most 10

lorafile.yaml:21:10: error: render 'r': cfg must be at most 100, got 200
  21 |     cfg: 200
     |          ^~~
  hint: the default is 'cfg: 7.5'

9 errors
`);
  });
});

describe('loading', () => {
  it('a misspelt source key is reported once, not also as a missing source', () => {
    expect(diagnose('version: 1\ndatasets:\n  ds:\n    foldr: data\nmodels:\n  m:\n    chekpoint: m.safetensors\n')).toBe(`lorafile.yaml:4:5: error: dataset 'ds': unknown key 'foldr'
  4 |     foldr: data
    |     ^~~~~
  hint: did you mean 'folder'?

lorafile.yaml:7:5: error: model 'm': unknown key 'chekpoint'
  7 |     chekpoint: m.safetensors
    |     ^~~~~~~~~
  hint: did you mean 'checkpoint'?

2 errors
`);
  });

  it('reads a section whose entries are all commented out as empty', () => {
    const config = parseConfig('version: 1\nmodels:\n  tiny: { builtin: tiny }\nrenders:\n  # r: {}\nloras:\n', 'lorafile.yaml');
    expect(config.renders).toEqual({});
    expect(config.loras).toEqual({});
  });

  it("points out a name from the wrong section", () => {
    expect(diagnose(lorafile(`  pokemon_lora:
    model: ds8
    dataset: pokemon
renders:
  r:
    lora: ds8
    prompts: [x]
`))).toBe(`lorafile.yaml:14:11: error: render 'r': lora 'ds8' is not defined in loras
  14 |     lora: ds8
     |           ^~~
  hint: 'ds8' is a model, but this names a lora; defined loras: pokemon_lora

1 error
`);
  });

  it('refuses a file too big to be a lorafile, and a folder, without reading them as YAML', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lorabuild-config-'));
    try {
      const big = path.join(dir, 'big.yaml');
      writeFileSync(big, 'version: 1\n' + '#'.repeat(1100 * 1024));
      const tooBig = (await loadConfig(big).catch((e: unknown) => e)) as ConfigError;
      expect(tooBig.diagnostics.map((d) => [d.code, d.message])).toEqual([
        ['lorafile-too-large', 'the lorafile is 1.1 MiB; a lorafile is a small YAML file (at most 1 MiB)'],
      ]);
      const folder = (await loadConfig(dir).catch((e: unknown) => e)) as ConfigError;
      expect(folder.diagnostics.map((d) => [d.code, d.message])).toEqual([['unreadable-lorafile', 'this is a folder, not a lorafile']]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads the sample lorafile with the lab defaults filled in', async () => {
    const config = await loadConfig(path.join(FIXTURES, 'valid.lorafile.yaml'));
    expect(config.file).toBe(path.join(FIXTURES, 'valid.lorafile.yaml'));
    expect(config.root).toBe(FIXTURES);
    expect(config.source).toContain('pokemon_lora:');
    expect(Object.keys(config.loras)).toEqual(['pokemon_lora', 'line_art_lora', 'line_art_more']);
    const lora = config.loras.line_art_lora;
    expect([lora.rank, lora.learning_rate, lora.batch_size, lora.steps, lora.checkpoint_every, lora.seed]).toEqual([4, 1e-4, 1, 600, 200, 0]);
    expect(config.loras.pokemon_lora.learning_rate).toBe(1e-4);
    expect(config.datasets['one-line-art'].rules).toMatchObject({ max_tokens: 75, min_size: 512, duplicates: 'error', missing_caption: 'error' });
    expect(config.renders.pokemon_ab.checkpoints).toEqual([200, 600, 1000]);
    expect(config.renders.line_art_grid).toMatchObject({ seeds: [0], strengths: [0, 1], sampler: 'euler', steps: 25, cfg: 7.5 });
    expect(config.out).toBe('out');
  });

  it('reports every problem of a file at once, in source order', async () => {
    const err = await loadConfig(path.join(FIXTURES, 'broken.lorafile.yaml')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const diagnostics = (err as ConfigError).diagnostics;
    expect(diagnostics.map((d) => `${d.line}:${d.col} ${d.code}`)).toEqual([
      '5:5 model-source',
      '12:14 unknown-reference',
      '13:11 out-of-range',
      '14:5 unknown-key',
      '15:20 out-of-range',
      '20:16 init-cycle',
      '29:19 render-checkpoint',
      '29:24 render-checkpoint',
    ]);
    expect(diagnostics.every((d) => d.severity === 'error' && d.hint)).toBe(true);
  });

  it('says which file is missing and how to name another', async () => {
    const missing = path.join(FIXTURES, 'no-such-lorafile.yaml');
    const err = (await loadConfig(missing).catch((e: unknown) => e)) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(formatDiagnostics(err.diagnostics)).toBe(
      `${path.relative(process.cwd(), missing)}: error: lorafile not found\n  hint: run lorabuild in the folder that holds lorafile.yaml, or name the file with -f PATH\n\n1 error\n`,
    );
  });

  it('accepts a UTF-8 byte order mark and CRLF line ends', () => {
    const source = '\uFEFFversion: 1\r\nmodels:\r\n  tiny:\r\n    builtin: tiny\r\n';
    expect(parseConfig(source, 'lorafile.yaml').models.tiny.builtin).toBe('tiny');
    const bad = '\uFEFFversion: 1\r\nmodels:\r\n  tiny:\r\n    builtin: tiny\r\n    sed: 3\r\n';
    expect(diagnose(bad)).toBe(`lorafile.yaml:5:5: error: model 'tiny': unknown key 'sed'
  5 |     sed: 3
    |     ^~~
  hint: did you mean 'seed'?

1 error
`);
  });
});
