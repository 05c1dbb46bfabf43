"""The UNet as a denoiser ``denoise(x, sigma) -> x0`` with classifier-free guidance, as ComfyUI's
EPS model sampling and sampling_function compute it.

The UNet sees ``x / sqrt(sigma^2 + 1)`` (in the model's dtype) and the nearest whole timestep of
sigma; its eps (or v) output gives x0 in float32. With guidance the uncond and cond halves run as one
batch [uncond, cond]; conditionings of different lengths (prompts of 1 and 2 chunks of 77 tokens)
are repeated to their least common multiple first when that is at most 4x the shorter one (repeating
every key and value leaves attention unchanged), else run apart. cfg == 1 skips the uncond pass.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List

import torch

from .discrete import DiscreteSchedule

UNet = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

MAX_REPEAT = 4


@dataclass
class Guidance:
    cond: torch.Tensor  # [B, 77 * chunks, D]
    uncond: torch.Tensor  # [B, 77 * chunks, D]
    scale: float


def batchable(lengths: List[int]) -> int | None:
    """The common length conditionings are repeated to for one batch, or None when too long."""
    common = 1
    for n in lengths:
        common = common * n // math.gcd(common, n)
    return common if common // min(lengths) <= MAX_REPEAT else None


def repeat_to(context: torch.Tensor, length: int) -> torch.Tensor:
    return context if context.shape[1] == length else context.repeat(1, length // context.shape[1], 1)


class ModelDenoiser:
    def __init__(self, unet: UNet, schedule: DiscreteSchedule, guidance: Guidance, prediction: str = "eps",
                 model_dtype: torch.dtype = torch.float32):
        if prediction not in ("eps", "v"):
            raise ValueError(f"prediction must be 'eps' or 'v', got {prediction!r}")
        self.unet = unet
        self.schedule = schedule
        self.guidance = guidance
        self.prediction = prediction
        self.model_dtype = model_dtype
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        g = self.guidance
        sigmas = sigma.reshape(-1).float().expand(x.shape[0]) if sigma.numel() == 1 else sigma.float()
        if math.isclose(g.scale, 1.0):
            return self._denoise(x, sigmas, g.cond)
        common = batchable([g.uncond.shape[1], g.cond.shape[1]])
        if common is None:
            uncond = self._denoise(x, sigmas, g.uncond)
            cond = self._denoise(x, sigmas, g.cond)
        else:
            both = self._denoise(torch.cat([x, x]), torch.cat([sigmas, sigmas]),
                                 torch.cat([repeat_to(g.uncond, common), repeat_to(g.cond, common)]))
            uncond, cond = both.chunk(2)
        return uncond + (cond - uncond) * g.scale

    def _denoise(self, x: torch.Tensor, sigmas: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        s = sigmas.reshape(-1, *([1] * (x.ndim - 1)))
        x_in = (x / (s ** 2 + 1.0) ** 0.5).to(self.model_dtype)
        t = self.schedule.timestep(sigmas).float().to(x.device)
        out = self.unet(x_in, t, context.to(self.model_dtype)).float()
        if self.prediction == "eps":
            return x - out * s
        # v prediction: x0 = x / (sigma^2 + 1) - v * sigma / sqrt(sigma^2 + 1)
        return x / (s ** 2 + 1.0) - out * s / (s ** 2 + 1.0) ** 0.5
