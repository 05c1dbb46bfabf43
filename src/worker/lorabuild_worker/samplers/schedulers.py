"""Noise schedules ("schedulers" in ComfyUI's KSampler): the sigmas a sampler steps through, ending
with 0, computed as ComfyUI computes them so that the same settings give the same sigmas.

    normal        timesteps evenly spaced from the last table entry to the first, interpolated in log sigma
    sgm_uniform   the same with steps + 1 points, dropping the last (the timestep-0 end)
    simple        every (1000 / steps)-th table entry from the top
    ddim_uniform  table entries 1, 1 + 1000 // steps, ... (one step more when 1000 / steps leaves a remainder)
    karras        Karras et al. (2022): evenly spaced in sigma^(1/7) between sigma_max and sigma_min
    exponential   evenly spaced in log sigma between sigma_max and sigma_min
    beta          table entries at the quantiles of Beta(0.6, 0.6) (Lee et al. 2024), repeats dropped

KSampler's own rules are in `ksampler_sigmas`: dpm_2 / dpm_2_ancestral compute one step more and
drop the second-to-last sigma, and a partial denoise d computes int(steps / d) steps and keeps the
last steps + 1 sigmas.
"""
from __future__ import annotations

import math
from typing import Callable, Dict

import numpy as np
import torch

from .beta_dist import beta_ppf
from .discrete import DiscreteSchedule, append_zero


def normal(schedule: DiscreteSchedule, steps: int, sgm: bool = False) -> torch.Tensor:
    start = float(schedule.timestep(torch.tensor(schedule.sigma_max)))
    end = float(schedule.timestep(torch.tensor(schedule.sigma_min)))
    with_zero = True
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
    else:
        if math.isclose(float(schedule.sigma_at(torch.tensor(end))), 0.0, abs_tol=1e-5):
            # a zero-terminal-SNR table already ends at 0: use one more level instead of appending one
            steps, with_zero = steps + 1, False
        timesteps = torch.linspace(start, end, steps)
    sigmas = torch.tensor([float(schedule.sigma_at(t)) for t in timesteps], dtype=torch.float32)
    return append_zero(sigmas) if with_zero else sigmas


def sgm_uniform(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    return normal(schedule, steps, sgm=True)


def simple(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    stride = len(schedule) / steps
    picked = [float(schedule.sigmas[-(1 + int(i * stride))]) for i in range(steps)]
    return append_zero(torch.tensor(picked, dtype=torch.float32))


def ddim_uniform(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    table = schedule.sigmas
    ends_at_zero = math.isclose(float(table[1]), 0.0, abs_tol=1e-5)
    if ends_at_zero:
        steps += 1
    stride = max(len(table) // steps, 1)
    picked = [float(table[t]) for t in range(1, len(table), stride)]
    picked.reverse()
    sigmas = torch.tensor(picked, dtype=torch.float32)
    return sigmas if ends_at_zero else append_zero(sigmas)


def karras(schedule: DiscreteSchedule, steps: int, rho: float = 7.0) -> torch.Tensor:
    ramp = torch.linspace(0, 1, steps)
    top, bottom = schedule.sigma_max ** (1 / rho), schedule.sigma_min ** (1 / rho)
    return append_zero((top + ramp * (bottom - top)) ** rho)


def exponential(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    return append_zero(torch.linspace(math.log(schedule.sigma_max), math.log(schedule.sigma_min), steps).exp())


def beta(schedule: DiscreteSchedule, steps: int, a: float = 0.6, b: float = 0.6) -> torch.Tensor:
    last = len(schedule) - 1
    quantiles = 1 - np.linspace(0, 1, steps, endpoint=False)
    timesteps = np.rint(np.array([beta_ppf(float(q), a, b) for q in quantiles]) * last)
    picked = [float(schedule.sigmas[int(t)]) for i, t in enumerate(timesteps) if i == 0 or t != timesteps[i - 1]]
    return append_zero(torch.tensor(picked, dtype=torch.float32))


SCHEDULERS: Dict[str, Callable[[DiscreteSchedule, int], torch.Tensor]] = {
    "normal": normal,
    "karras": karras,
    "exponential": exponential,
    "sgm_uniform": sgm_uniform,
    "simple": simple,
    "ddim_uniform": ddim_uniform,
    "beta": beta,
}

# ComfyUI computes one sigma more for these and drops the second-to-last, so that their last
# second-order step does not land on the smallest sigma.
DISCARD_PENULTIMATE = frozenset(("dpm_2", "dpm_2_ancestral"))


def scheduler_sigmas(schedule: DiscreteSchedule, scheduler: str, steps: int) -> torch.Tensor:
    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r}; use one of {', '.join(SCHEDULERS)}")
    if steps < 1:
        raise ValueError("steps must be at least 1")
    return SCHEDULERS[scheduler](schedule, steps)


def _full_sigmas(schedule: DiscreteSchedule, sampler: str, scheduler: str, steps: int) -> torch.Tensor:
    if sampler in DISCARD_PENULTIMATE:
        sigmas = scheduler_sigmas(schedule, scheduler, steps + 1)
        return torch.cat([sigmas[:-2], sigmas[-1:]])
    return scheduler_sigmas(schedule, scheduler, steps)


def ksampler_sigmas(schedule: DiscreteSchedule, sampler: str, scheduler: str, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """The sigmas ComfyUI's KSampler node samples with. denoise < 1 keeps the tail of a longer
    schedule (img2img, a second pass); denoise <= 0 gives no sigmas at all (nothing to do)."""
    if denoise > 0.9999:
        return _full_sigmas(schedule, sampler, scheduler, steps)
    if denoise <= 0.0:
        return torch.zeros(0)
    return _full_sigmas(schedule, sampler, scheduler, int(steps / denoise))[-(steps + 1):]
