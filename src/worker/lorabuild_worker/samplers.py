"""Samplers for SD1.x as pure functions of a denoiser.

Everything here works in the k-diffusion ("sigma") parameterisation: a noisy latent is
``x = x0 + sigma * noise`` and a *denoiser* ``denoise(x, sigma) -> x0_estimate`` predicts the clean
latent. ``ModelDenoiser`` turns an SD1 UNet (which sees ``x / sqrt(1 + sigma^2)`` and an integer-ish
timestep and predicts eps or v) into such a denoiser, with classifier-free guidance.

Samplers: ``euler``, ``euler_a`` (ancestral), ``ddim`` (eta 0) and ``dpmpp_2m_karras``.

Fairness: every random number comes from ``torch.Generator`` objects on the CPU, one per cell,
seeded from the cell's seed, so a cell's initial latent and its ancestral noise do not depend on the
device, the batch it was rendered in or the other cells.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import torch

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""denoise(x, sigma) -> x0 estimate; x is [B, C, H, W], sigma a 0-d tensor."""

SAMPLERS = ("euler", "euler_a", "ddim", "dpmpp_2m_karras")

DISPLAY_NAMES = {
    "euler": "Euler",
    "euler_a": "Euler a",
    "ddim": "DDIM",
    "dpmpp_2m_karras": "DPM++ 2M Karras",
}


# ---------------------------------------------------------------------------------------------
# Noise schedules


def model_sigmas(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """sigma_t = sqrt((1 - abar_t) / abar_t) for every training timestep t (ascending in t)."""
    ac = alphas_cumprod.to(torch.float64)
    return ((1 - ac) / ac).sqrt()


class Schedule:
    """The model's discrete noise levels with a continuous sigma <-> timestep map (linear in log sigma)."""

    def __init__(self, alphas_cumprod: torch.Tensor):
        if alphas_cumprod.ndim != 1 or alphas_cumprod.numel() < 2:
            raise ValueError("alphas_cumprod must be a 1-d tensor with at least 2 entries")
        self.sigmas = model_sigmas(alphas_cumprod)
        self.log_sigmas = self.sigmas.log()
        if not bool((self.log_sigmas[1:] > self.log_sigmas[:-1]).all()):
            raise ValueError("alphas_cumprod must be strictly decreasing")
        self.alphas_cumprod = alphas_cumprod.to(torch.float64)

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional timestep of a noise level, interpolating linearly in log sigma."""
        log_sigma = sigma.to(torch.float64).log().clamp(self.log_sigmas[0], self.log_sigmas[-1])
        hi = torch.searchsorted(self.log_sigmas, log_sigma.reshape(-1)).clamp(1, len(self.log_sigmas) - 1)
        lo = hi - 1
        frac = (log_sigma.reshape(-1) - self.log_sigmas[lo]) / (self.log_sigmas[hi] - self.log_sigmas[lo])
        return (lo.to(torch.float64) + frac).reshape(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(torch.float64).clamp(0, len(self.log_sigmas) - 1)
        lo = t.floor().long().clamp(max=len(self.log_sigmas) - 2)
        frac = t - lo.to(torch.float64)
        return ((1 - frac) * self.log_sigmas[lo] + frac * self.log_sigmas[lo + 1]).exp()

    def normal(self, steps: int) -> torch.Tensor:
        """Evenly spaced timesteps from the last to the first (A1111's default for Euler), then 0."""
        t = torch.linspace(len(self.sigmas) - 1, 0, steps, dtype=torch.float64)
        return _append_zero(self.t_to_sigma(t))

    def karras(self, steps: int, rho: float = 7.0) -> torch.Tensor:
        """Karras et al. (2022) schedule: evenly spaced in sigma^(1/rho), then 0."""
        ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
        lo, hi = self.sigma_min ** (1 / rho), self.sigma_max ** (1 / rho)
        return _append_zero((hi + ramp * (lo - hi)) ** rho)

    def ddim(self, steps: int) -> torch.Tensor:
        """DDIM's uniform integer timesteps (stride T // steps, offset 1, as in the CompVis code), then 0."""
        total = len(self.sigmas)
        stride = max(total // steps, 1)
        ts = torch.arange(0, total, stride)[:steps] + 1
        # at steps >= total the offset pushes the last timestep past the table: keep each level once
        ts = torch.unique(ts.clamp(max=total - 1)).flip(0)
        return _append_zero(self.sigmas[ts])


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


# ---------------------------------------------------------------------------------------------
# Per-cell random numbers (fairness)


class CellNoise:
    """One CPU generator per cell, seeded from the cell's seed; draws are stacked into a batch.

    The first draw of a cell is its initial latent, so it depends only on (seed, latent shape).
    Later draws (ancestral samplers) come from a second generator seeded from the same seed, so an
    ancestral sampler and a deterministic one start from the same latent.
    """

    def __init__(self, seeds: Sequence[int], latent_shape: Sequence[int], device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32):
        self.shape = tuple(latent_shape)
        self.device = torch.device(device)
        self.dtype = dtype
        self.seeds = [int(s) for s in seeds]
        self._step_gens = [_cpu_generator(_step_seed(s)) for s in self.seeds]

    def initial(self) -> torch.Tensor:
        draws = [initial_noise(s, self.shape) for s in self.seeds]
        return torch.stack(draws).to(self.device, self.dtype)

    def step(self) -> torch.Tensor:
        draws = [torch.randn(self.shape, generator=g, dtype=torch.float32) for g in self._step_gens]
        return torch.stack(draws).to(self.device, self.dtype)


def initial_noise(seed: int, latent_shape: Sequence[int]) -> torch.Tensor:
    """The initial latent noise of a cell: standard normal from a CPU generator seeded with `seed`."""
    return torch.randn(tuple(latent_shape), generator=_cpu_generator(seed), dtype=torch.float32)


def _cpu_generator(seed: int) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    return g


def _step_seed(seed: int) -> int:
    # Distinct from the initial-noise stream but still a pure function of the cell seed.
    return (int(seed) * 6364136223846793005 + 1442695040888963407) & 0xFFFF_FFFF_FFFF_FFFF


# ---------------------------------------------------------------------------------------------
# The UNet as a denoiser


@dataclass
class Guidance:
    cond: torch.Tensor  # [B, 77, D]
    uncond: torch.Tensor  # [B, 77, D]
    scale: float


class ModelDenoiser:
    """Wraps ``unet(x_in, t, context)`` (eps or v prediction) as ``denoise(x, sigma) -> x0``.

    With guidance, cond and uncond run as one batch of 2B; ``scale == 1`` skips the uncond pass.
    """

    def __init__(self, unet: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                 schedule: Schedule, guidance: Guidance, prediction: str = "eps"):
        if prediction not in ("eps", "v"):
            raise ValueError(f"prediction must be 'eps' or 'v', got {prediction!r}")
        self.unet = unet
        self.schedule = schedule
        self.guidance = guidance
        self.prediction = prediction
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        g = self.guidance
        if g.scale == 1.0:
            return self._denoise(x, sigma, g.cond)
        both = self._denoise(torch.cat([x, x]), sigma, torch.cat([g.uncond, g.cond]))
        uncond, cond = both.chunk(2)
        return uncond + (cond - uncond) * g.scale

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        s = float(sigma)
        c_in = 1.0 / math.sqrt(s * s + 1.0)
        t = self.schedule.sigma_to_t(sigma.reshape(1)).to(x.device, torch.float32).expand(x.shape[0])
        out = self.unet(x * c_in, t, context).to(x.dtype)
        if self.prediction == "eps":
            return x - out * s
        # v prediction: x0 = c_skip * x + c_out * v
        return x / (s * s + 1.0) - out * (s * c_in)


# ---------------------------------------------------------------------------------------------
# The samplers (k-diffusion style; `sigmas` ends with 0)

StepCallback = Optional[Callable[[int, int], None]]


def sample_euler(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, callback: StepCallback = None,
                 noise: Optional[CellNoise] = None) -> torch.Tensor:
    """First-order Euler steps of the probability-flow ODE dx/dsigma = (x - x0) / sigma."""
    n = len(sigmas) - 1
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = denoise(x, s)
        x = x0 + (x - x0) * float(s_next / s)
        _report(callback, i, n)
    return x


def sample_ddim(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, callback: StepCallback = None,
                noise: Optional[CellNoise] = None) -> torch.Tensor:
    """DDIM with eta 0. In sigma space its update x_prev = x0 + sigma_prev * eps is exactly an Euler
    step, so DDIM differs from `euler` by its schedule (Schedule.ddim), not by the update."""
    return sample_euler(denoise, x, sigmas, callback)


def sample_euler_ancestral(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, callback: StepCallback = None,
                           noise: Optional[CellNoise] = None, eta: float = 1.0) -> torch.Tensor:
    """Euler down to sigma_down, then fresh noise up to sigma_next (variance-matched)."""
    if noise is None:
        raise ValueError("euler_a needs per-cell noise")
    n = len(sigmas) - 1
    for i in range(n):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, sigmas[i])
        s_up = min(s_next, eta * math.sqrt(max(s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2, 0.0)))
        s_down = math.sqrt(max(s_next ** 2 - s_up ** 2, 0.0))
        x = x0 + (x - x0) * (s_down / s)
        if s_next > 0:
            x = x + noise.step() * s_up
        _report(callback, i, n)
    return x


def sample_dpmpp_2m(denoise: Denoise, x: torch.Tensor, sigmas: torch.Tensor, callback: StepCallback = None,
                    noise: Optional[CellNoise] = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): second-order multistep in lambda = -log(sigma).

    Each step is exact for a denoiser that is constant over the step; the previous step's x0 gives
    a linear correction of that constant. The first step and the step to sigma = 0 are first order.
    """
    n = len(sigmas) - 1
    prev_x0: Optional[torch.Tensor] = None
    prev_h = 0.0
    for i in range(n):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoise(x, sigmas[i])
        if s_next == 0:
            x = x0
        else:
            h = math.log(s) - math.log(s_next)
            if prev_x0 is None:
                x0_used = x0
            else:
                r = prev_h / h
                x0_used = x0 * (1 + 1 / (2 * r)) - prev_x0 * (1 / (2 * r))
            x = x * (s_next / s) - x0_used * math.expm1(-h)
            prev_h = h
        prev_x0 = x0
        _report(callback, i, n)
    return x


def _report(callback: StepCallback, i: int, n: int) -> None:
    if callback is not None:
        callback(i + 1, n)


# ---------------------------------------------------------------------------------------------
# One entry point


def sigmas_for(sampler: str, schedule: Schedule, steps: int) -> torch.Tensor:
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if sampler in ("euler", "euler_a"):
        return schedule.normal(steps)
    if sampler == "ddim":
        return schedule.ddim(steps)
    if sampler == "dpmpp_2m_karras":
        return schedule.karras(steps)
    raise ValueError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")


_SAMPLE_FNS = {
    "euler": sample_euler,
    "euler_a": sample_euler_ancestral,
    "ddim": sample_ddim,
    "dpmpp_2m_karras": sample_dpmpp_2m,
}


def sample(sampler: str, denoise: Denoise, noise: CellNoise, schedule: Schedule, steps: int,
           callback: StepCallback = None) -> torch.Tensor:
    """Runs `sampler` from the cells' initial noise (scaled to the first sigma) down to sigma 0."""
    sigmas = sigmas_for(sampler, schedule, steps)
    x = noise.initial() * float(sigmas[0])
    sigmas_dev = sigmas.to(torch.float32)
    return _SAMPLE_FNS[sampler](denoise, x, sigmas_dev, callback=callback, noise=noise)


def scaled_linear_alphas_cumprod(timesteps: int = 1000, beta_start: float = 0.00085,
                                 beta_end: float = 0.012) -> torch.Tensor:
    """SD1.x's training schedule ("scaled linear" betas), for tests and models without one."""
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, dim=0)


__all__: List[str] = [
    "SAMPLERS", "DISPLAY_NAMES", "Schedule", "CellNoise", "initial_noise", "Guidance", "ModelDenoiser",
    "sample", "sigmas_for", "sample_euler", "sample_euler_ancestral", "sample_ddim", "sample_dpmpp_2m",
    "scaled_linear_alphas_cumprod",
]
