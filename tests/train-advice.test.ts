// What the train stage tells a student: absurd settings before anything runs (at the lorafile line to
// change), the estimate from the first timed steps, ETA, and settings the worker could not honour.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { formatDuration, ignoredSetting, settingsAdvice, StepClock, type TrainSetup } from '../src/stages/train-advice.js';

const TEXT = `version: 1
models:
  m: { builtin: tiny }
datasets:
  d: { folder: d }
loras:
  l:
    model: m
    dataset: d
    steps: 50
    checkpoint_every: 10
    resolution: 512
    compile: true
`;

function setup(arch: string, device: string, text = TEXT): TrainSetup {
  const config = parseConfig(text, '/p/lorafile.yaml');
  return { config, lora: 'l', spec: config.loras.l, arch, device };
}

describe('settings advice', () => {
  it('warns about the tiny model at 512 px, at the resolution line', () => {
    const [d, ...rest] = settingsAdvice(setup('tiny', 'cpu'));
    expect(rest).toEqual([]);
    expect(d).toMatchObject({ severity: 'warning', code: 'slow_training', file: '/p/lorafile.yaml', line: 12, col: 5, hint: 'set resolution: 64' });
    expect(d.message).toBe("lora 'l' trains the builtin tiny model at 512 px; it is made for 64 px, so each step costs ~64x more for nothing it could learn");
  });

  it('warns about SD1.5 at 512 px on the CPU only', () => {
    const [d] = settingsAdvice(setup('sd15', 'cpu'));
    expect(d.message).toContain("trains SD1.5 at 512 px on the CPU");
    expect(d.hint).toContain('CUDA GPU');
    expect(d.line).toBe(12);
    expect(settingsAdvice(setup('sd15', 'cuda'))).toEqual([]);
    expect(settingsAdvice(setup('tiny', 'cpu', TEXT.replace('resolution: 512', 'resolution: 64')))).toEqual([]);
  });

  it('places a setting the worker ignored at its key', () => {
    const d = ignoredSetting(setup('tiny', 'cpu'), { setting: 'compile', message: 'compile: true has no effect: torch 1.13 has no torch.compile' });
    expect(d).toMatchObject({ severity: 'warning', code: 'setting_ignored', line: 13, col: 5, message: "lora 'l': compile: true has no effect: torch 1.13 has no torch.compile" });
  });
});

describe('the estimate from timed steps', () => {
  it('skips the first step, estimates after three timed steps, once, at the steps line', () => {
    const clock = new StepClock(setup('tiny', 'cpu'));
    expect(clock.tick(1, 50, 10_000)).toBeNull(); // warm-up step: the reference, not timed
    expect(clock.tick(2, 50, 10_500)).toBeNull();
    expect(clock.tick(3, 50, 11_000)).toBeNull();
    const d = clock.tick(4, 50, 11_500);
    expect(d).toMatchObject({ severity: 'info', code: 'training_estimate', line: 10 });
    expect(d!.message).toBe("lora 'l': about 23 s left, 25 s for all 50 steps (2.00 steps/s on cpu, timed over 3 steps)");
    expect(clock.tick(5, 50, 12_000)).toBeNull();
  });

  it('warns when the run will take hours, after one slow step', () => {
    const clock = new StepClock(setup('sd15', 'cpu', TEXT.replace('steps: 50', 'steps: 1000')));
    clock.tick(1, 1000, 0);
    const d = clock.tick(2, 1000, 40_000);
    expect(d).toMatchObject({ severity: 'warning', code: 'slow_training' });
    expect(d!.message).toBe("lora 'l': about 11 h 05 min left, 11 h 06 min for all 1000 steps (40.0 s/step on cpu, timed over 1 step)");
    expect(d!.hint).toBe('train on a CUDA GPU, or lower resolution or steps');
  });

  it('formats durations', () => {
    expect([0.4, 42, 60, 432, 3599, 3600, 11_160].map(formatDuration)).toEqual(['0 s', '42 s', '1 min 00 s', '7 min 12 s', '59 min 59 s', '1 h 00 min', '3 h 06 min']);
  });
});
