// What a student should hear about a training: settings that make it absurdly slow (said before any
// work starts), an estimate of the whole run from the first timed steps (a warning when it is hours),
// and settings the worker could not honour. Diagnostics point at the lorafile line to change.
import { locatorOf } from '../config/lazy.js';
import type { Config, LoraSpec } from '../config/schema.js';
import type { Diagnostic } from '../config/diagnostic.js';

/** the builtin tiny model is meant for 64 px; above this it only gets slower */
const TINY_MAX_USEFUL_RESOLUTION = 128;
/** SD1.5 on a CPU at this size and above takes many seconds per step */
const CPU_SD15_SLOW_RESOLUTION = 512;
/** an estimate above this is worth a warning */
const LONG_RUN_SECONDS = 4 * 3600;
/** steps timed before estimating (the first step, with its warm-up, is never timed) */
const TIMED_STEPS = 3;
/** ...unless one timed step already took this long */
const SLOW_STEP_SECONDS = 10;

export interface TrainSetup {
  config: Config;
  lora: string;
  spec: LoraSpec;
  arch: string;
  device: string;
}

function at(setup: TrainSetup, field: keyof LoraSpec): Pick<Diagnostic, 'file' | 'line' | 'col' | 'endCol'> {
  const pos = locatorOf(setup.config)?.key(['loras', setup.lora, field]);
  return { file: setup.config.file, ...(pos ? { line: pos.line, col: pos.col, endCol: pos.endCol } : {}) };
}

/** Warnings about the settings alone, before anything runs. */
export function settingsAdvice(setup: TrainSetup): Diagnostic[] {
  const { spec, arch, device, lora } = setup;
  const found: Diagnostic[] = [];
  if (arch === 'tiny' && spec.resolution > TINY_MAX_USEFUL_RESOLUTION) {
    found.push({
      severity: 'warning',
      code: 'slow_training',
      message: `lora '${lora}' trains the builtin tiny model at ${spec.resolution} px; it is made for 64 px, so each step costs ~${Math.round((spec.resolution / 64) ** 2)}x more for nothing it could learn`,
      hint: 'set resolution: 64',
      ...at(setup, 'resolution'),
    });
  }
  if (arch === 'sd15' && device === 'cpu' && spec.resolution >= CPU_SD15_SLOW_RESOLUTION) {
    found.push({
      severity: 'warning',
      code: 'slow_training',
      message: `lora '${lora}' trains SD1.5 at ${spec.resolution} px on the CPU: that takes many seconds per step (${spec.steps} steps: hours)`,
      hint: 'train on a CUDA GPU (device: cuda), or lower resolution (e.g. 256: about 4x faster, though SD1.5 draws worse below 512)',
      ...at(setup, 'resolution'),
    });
  }
  return found;
}

/** A setting the worker could not honour (e.g. compile: true on a torch without torch.compile). */
export function ignoredSetting(setup: TrainSetup, warning: { setting: string; message: string }): Diagnostic {
  const field = warning.setting in setup.spec ? (warning.setting as keyof LoraSpec) : 'model';
  return { severity: 'warning', code: 'setting_ignored', message: `lora '${setup.lora}': ${warning.message}`, ...at(setup, field) };
}

/** "42 s", "7 min 12 s", "3 h 05 min" */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/**
 * Times training steps from progress events: the first event (its step carries start-up costs) is
 * the reference, and after TIMED_STEPS more steps (or one slow one) there is an estimate, once.
 */
export class StepClock {
  private first: { step: number; at: number } | null = null;
  private last: { step: number; at: number } | null = null;
  private estimated = false;

  constructor(private readonly setup: TrainSetup) {}

  /** seconds per step, once at least one step after the first was timed */
  secondsPerStep(): number | null {
    if (!this.first || !this.last || this.last.step <= this.first.step) return null;
    return (this.last.at - this.first.at) / 1000 / (this.last.step - this.first.step);
  }

  /** Feed a progress event; returns the estimate diagnostic the first time there is one. */
  tick(step: number, total: number, nowMs: number): Diagnostic | null {
    if (!this.first) {
      this.first = { step, at: nowMs };
      return null;
    }
    this.last = { step, at: nowMs };
    const perStep = this.secondsPerStep();
    if (this.estimated || perStep === null) return null;
    const timed = step - this.first.step;
    if (timed < TIMED_STEPS && perStep < SLOW_STEP_SECONDS) return null;
    this.estimated = true;
    const remaining = (total - step) * perStep;
    const whole = total * perStep;
    const { lora, device } = this.setup;
    const message = `lora '${lora}': about ${formatDuration(remaining)} left, ${formatDuration(whole)} for all ${total} steps (${perStep < 1 ? `${(1 / perStep).toFixed(2)} steps/s` : `${perStep.toFixed(1)} s/step`} on ${device}, timed over ${timed} step${timed === 1 ? '' : 's'})`;
    if (whole < LONG_RUN_SECONDS) return { severity: 'info', code: 'training_estimate', message, ...at(this.setup, 'steps') };
    return {
      severity: 'warning',
      code: 'slow_training',
      message,
      hint: device === 'cpu' ? 'train on a CUDA GPU, or lower resolution or steps' : 'lower resolution, batch_size or steps',
      ...at(this.setup, 'steps'),
    };
  }

}
