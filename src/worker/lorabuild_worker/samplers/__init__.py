"""Sampling as ComfyUI's KSampler does it, for SD1.x (eps / v prediction, discrete 1000-step table).

    discrete    DiscreteSchedule: the sigma table, nearest-timestep map, start-noise scaling
    schedulers  normal, karras, exponential, sgm_uniform, simple, ddim_uniform, beta; KSampler's rules
    steppers    euler, euler_ancestral, heun, dpm_2, dpm_2_ancestral, lms, dpmpp_2s_ancestral, dpmpp_2m,
                ddim, lcm, ipndm, ddpm as functions of a denoiser
    noise       CellNoise: per-cell CPU generators (initial noise from the seed, ancestral from seed + 1)
    denoiser    ModelDenoiser: the UNet as x0 predictor with classifier-free guidance
    ksampler    sample(): sampler + scheduler + steps + denoise -> final latent
"""
from .denoiser import Guidance, ModelDenoiser
from .discrete import DiscreteSchedule
from .ksampler import SAMPLERS, sample, step_count
from .noise import CellNoise, initial_noise
from .schedulers import SCHEDULERS, ksampler_sigmas, scheduler_sigmas

__all__ = [
    "CellNoise", "DiscreteSchedule", "Guidance", "ModelDenoiser", "SAMPLERS", "SCHEDULERS", "initial_noise",
    "ksampler_sigmas", "sample", "scheduler_sigmas", "step_count",
]
