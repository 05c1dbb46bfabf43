// Sampler and scheduler names as ComfyUI's KSampler node spells them (what a student picks in the
// lab), and the names lorabuild used before it had schedulers: still accepted, with a note.

export const SAMPLERS = [
  'euler',
  'euler_ancestral',
  'heun',
  'dpm_2',
  'dpm_2_ancestral',
  'lms',
  'dpmpp_2s_ancestral',
  'dpmpp_2m',
  'ddim',
  'lcm',
  'ipndm',
  'ddpm',
] as const;

export const SCHEDULERS = ['normal', 'karras', 'exponential', 'sgm_uniform', 'simple', 'ddim_uniform', 'beta'] as const;

export type SamplerName = (typeof SAMPLERS)[number];
export type SchedulerName = (typeof SCHEDULERS)[number];

/** KSampler's default scheduler (the one in ComfyUI's default workflow). */
export const DEFAULT_SCHEDULER: SchedulerName = 'normal';

/** Old lorabuild sampler names -> the ComfyUI sampler (and scheduler) they stand for. */
export const LEGACY_SAMPLERS = {
  euler_a: { sampler: 'euler_ancestral', scheduler: undefined },
  dpmpp_2m_karras: { sampler: 'dpmpp_2m', scheduler: 'karras' },
} as const satisfies Record<string, { sampler: SamplerName; scheduler: SchedulerName | undefined }>;

export type LegacySamplerName = keyof typeof LEGACY_SAMPLERS;

export const SAMPLER_CHOICES = [...SAMPLERS, ...(Object.keys(LEGACY_SAMPLERS) as LegacySamplerName[])] as const;

export interface Sampling {
  sampler: SamplerName;
  scheduler: SchedulerName;
  /** set when the lorafile used an old name: what to write instead */
  legacy?: { name: LegacySamplerName; instead: string };
}

function isLegacy(name: string): name is LegacySamplerName {
  return Object.hasOwn(LEGACY_SAMPLERS, name);
}

/** The ComfyUI sampler + scheduler of a render's settings (old names translated). */
export function resolveSampling(sampler: SamplerName | LegacySamplerName, scheduler: SchedulerName | undefined): Sampling {
  if (!isLegacy(sampler)) return { sampler, scheduler: scheduler ?? DEFAULT_SCHEDULER };
  const target = LEGACY_SAMPLERS[sampler];
  const resolved = { sampler: target.sampler, scheduler: scheduler ?? target.scheduler ?? DEFAULT_SCHEDULER };
  const instead = target.scheduler ? `sampler: ${target.sampler} with scheduler: ${target.scheduler}` : `sampler: ${target.sampler}`;
  return { ...resolved, legacy: { name: sampler, instead } };
}

/** An old name whose scheduler contradicts an explicit scheduler (dpmpp_2m_karras with normal). */
export function legacyConflict(sampler: string, scheduler: string | undefined): string | undefined {
  if (!isLegacy(sampler) || scheduler === undefined) return undefined;
  const fixed = LEGACY_SAMPLERS[sampler].scheduler;
  return fixed !== undefined && fixed !== scheduler ? fixed : undefined;
}
