"""SD1's discrete noise levels, held and used the way ComfyUI's ModelSamplingDiscrete (EPS) does.

The model was trained on 1000 timesteps with "scaled linear" betas. Noise level t has
``sigma_t = sqrt((1 - abar_t) / abar_t)``; the table is computed in float64 and kept in float32.
The UNet is given the *nearest whole* timestep of a sigma (not one interpolated between table
entries, as A1111 and CompVis do), and a schedule's fractional timesteps map back to sigmas by
interpolating log sigma linearly in float32.
"""
from __future__ import annotations

import math

import torch

TRAIN_TIMESTEPS = 1000
BETA_START = 0.00085
BETA_END = 0.012


class DiscreteSchedule:
    """The model's noise table with its sigma <-> timestep maps and ComfyUI's start-noise scaling."""

    def __init__(self, timesteps: int = TRAIN_TIMESTEPS, beta_start: float = BETA_START, beta_end: float = BETA_END):
        if timesteps < 2:
            raise ValueError("a discrete schedule needs at least 2 timesteps")
        betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, timesteps, dtype=torch.float64) ** 2
        abar = torch.cumprod(1.0 - betas, dim=0)
        sigmas = ((1.0 - abar) / abar).sqrt()
        self.sigmas = sigmas.float()
        self.log_sigmas = sigmas.log().float()

    def __len__(self) -> int:
        return len(self.sigmas)

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """The index of the table entry nearest to each sigma in log space (ties: the lower index)."""
        log_sigma = sigma.float().log().to(self.log_sigmas.device)
        distance = (log_sigma.reshape(1, -1) - self.log_sigmas.reshape(-1, 1)).abs()
        return distance.argmin(dim=0).reshape(sigma.shape).to(sigma.device)

    def sigma_at(self, timestep: torch.Tensor) -> torch.Tensor:
        """Sigma of a (fractional) timestep: log sigma interpolated linearly between table entries."""
        t = timestep.float().clamp(0, len(self.sigmas) - 1)
        low, high = t.floor().long(), t.ceil().long()
        frac = t.frac()
        return ((1 - frac) * self.log_sigmas[low] + frac * self.log_sigmas[high]).exp()

    def is_full_denoise(self, first_sigma: float) -> bool:
        """Whether a schedule starts at the top of the table (ComfyUI's max_denoise)."""
        return math.isclose(self.sigma_max, first_sigma, rel_tol=1e-5) or first_sigma > self.sigma_max

    def start_latent(self, noise: torch.Tensor, first_sigma: torch.Tensor, latent: torch.Tensor | None = None) -> torch.Tensor:
        """The latent sampling starts from. A full denoise scales the noise by sqrt(1 + sigma^2): the
        variance of x_T = x_0 + sigma * eps when x_0 has unit variance. Otherwise by sigma, added to the
        latent being re-noised (img2img, a second pass)."""
        sigma = first_sigma.float()
        scale = (1.0 + sigma ** 2.0).sqrt() if self.is_full_denoise(float(sigma)) else sigma
        start = noise * scale
        return start if latent is None else start + latent


def append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])
