"""One entry point with the semantics of ComfyUI's KSampler node: sampler + scheduler + steps +
denoise, from the cells' seeds (and an optional latent to re-noise) to the final latent."""
from __future__ import annotations

from typing import Optional

import torch

from .discrete import DiscreteSchedule
from .noise import CellNoise
from .schedulers import ksampler_sigmas
from .steppers import STEPPERS, Denoise, Progress

SAMPLERS = tuple(STEPPERS)


def sample(sampler: str, scheduler: str, steps: int, denoise_fn: Denoise, noise: CellNoise, schedule: DiscreteSchedule,
           denoise: float = 1.0, latent: Optional[torch.Tensor] = None, progress: Progress = None) -> torch.Tensor:
    """The final latent [B, C, H, W] in float32. `latent` (scaled like the model's latents) is what a
    partial denoise starts from; without it a partial denoise starts from noise alone, as ComfyUI
    does with an empty latent."""
    if sampler not in STEPPERS:
        raise ValueError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
    sigmas = ksampler_sigmas(schedule, sampler, scheduler, steps, denoise).float().to(noise.device)
    start = torch.zeros((len(noise.seeds), *noise.shape), device=noise.device) if latent is None else latent.float().to(noise.device)
    if len(sigmas) == 0:
        return start
    x = schedule.start_latent(noise.initial().float(), sigmas[0], start)
    return STEPPERS[sampler](denoise_fn, x, sigmas, noise, progress)


def step_count(sampler: str, scheduler: str, steps: int, denoise: float = 1.0, schedule: Optional[DiscreteSchedule] = None) -> int:
    """How many sampler steps a setting takes (ddim_uniform and beta may take one more or fewer)."""
    return max(len(ksampler_sigmas(schedule or DiscreteSchedule(), sampler, scheduler, steps, denoise)) - 1, 0)
