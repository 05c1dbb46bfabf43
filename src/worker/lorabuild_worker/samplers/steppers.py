"""The sampling algorithms of ComfyUI's KSampler (k-diffusion's), as functions of a denoiser.

Every function takes ``denoise(x, sigma) -> x0``, the start latent x, the float32 ``sigmas`` ending
with 0, the cells' noise (ancestral ones draw from it) and a progress callback, and returns the
final latent. Steps are written with the ODE derivative d = (x - x0) / sigma of Karras et al. (2022).

    euler               first-order Euler (Karras alg. 2 without churn); `ddim` is the same update
    euler_ancestral     Euler down to sigma_down, then fresh noise up to the next sigma
    heun                Euler predictor + trapezoid corrector (2 model calls per step, 1 on the last)
    dpm_2               midpoint in log sigma (DPM-Solver-2 style), Euler on the last step
    dpm_2_ancestral     dpm_2 down to sigma_down, then fresh noise
    lms                 linear multistep of order up to 4 over past derivatives
    dpmpp_2s_ancestral  DPM-Solver++(2S) single-step second order down to sigma_down, then fresh noise
    dpmpp_2m            DPM-Solver++(2M) multistep second order (Lu et al. 2022)
    lcm                 latent consistency: take x0, re-noise it to the next sigma
    ipndm               improved pseudo-numerical multistep (Adams-Bashforth up to order 4)
    ddpm                ancestral DDPM posterior steps in the variance-preserving parameterisation
"""
from __future__ import annotations

from typing import Callable, List, Optional

import numpy as np
import torch

from .noise import CellNoise

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Progress = Optional[Callable[[int, int], None]]


def _derivative(x: torch.Tensor, sigma: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    return (x - x0) / sigma


def ancestral_split(sigma: torch.Tensor, sigma_next: torch.Tensor, eta: float = 1.0):
    """(sigma_down, sigma_up): step deterministically to sigma_down, then add noise of std sigma_up,
    so that the variance lands on sigma_next^2 = sigma_down^2 + sigma_up^2."""
    if not eta:
        return sigma_next, torch.zeros_like(sigma_next)
    up = torch.minimum(sigma_next, eta * (sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2) ** 0.5)
    return (sigma_next ** 2 - up ** 2) ** 0.5, up


def _fresh(noise: Optional[CellNoise], name: str) -> CellNoise:
    if noise is None:
        raise ValueError(f"{name} draws fresh noise at each step: give it the cells' noise")
    return noise


def _tell(progress: Progress, i: int, n: int) -> None:
    if progress is not None:
        progress(i + 1, n)


def euler(denoise: Denoise, x, sigmas, noise=None, progress: Progress = None):
    n = len(sigmas) - 1
    for i in range(n):
        x0 = denoise(x, sigmas[i])
        x = x + _derivative(x, sigmas[i], x0) * (sigmas[i + 1] - sigmas[i])
        _tell(progress, i, n)
    return x


def euler_ancestral(denoise: Denoise, x, sigmas, noise=None, progress: Progress = None):
    noise = _fresh(noise, "euler_ancestral")
    n = len(sigmas) - 1
    for i in range(n):
        x0 = denoise(x, sigmas[i])
        down, up = ancestral_split(sigmas[i], sigmas[i + 1])
        if down == 0:
            x = x0
        else:
            x = x + _derivative(x, sigmas[i], x0) * (down - sigmas[i]) + noise.step() * up
        _tell(progress, i, n)
    return x


def heun(denoise: Denoise, x, sigmas, noise=None, progress: Progress = None):
    n = len(sigmas) - 1
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = _derivative(x, s, denoise(x, s))
        if s_next == 0:
            x = x + d * (s_next - s)
        else:
            predicted = x + d * (s_next - s)
            d_next = _derivative(predicted, s_next, denoise(predicted, s_next))
            x = x + (d + d_next) / 2 * (s_next - s)
        _tell(progress, i, n)
    return x


def _midpoint_step(denoise: Denoise, x, s, target, d):
    """Evaluate the derivative at the geometric midpoint of s and target, then step the whole way with it."""
    mid = s.log().lerp(target.log(), 0.5).exp()
    x_mid = x + d * (mid - s)
    return x + _derivative(x_mid, mid, denoise(x_mid, mid)) * (target - s)


def dpm_2(denoise: Denoise, x, sigmas, noise=None, progress: Progress = None):
    n = len(sigmas) - 1
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        d = _derivative(x, s, denoise(x, s))
        x = x + d * (s_next - s) if s_next == 0 else _midpoint_step(denoise, x, s, s_next, d)
        _tell(progress, i, n)
    return x


def dpm_2_ancestral(denoise: Denoise, x, sigmas, noise=None, progress: Progress = None):
    noise = _fresh(noise, "dpm_2_ancestral")
    n = len(sigmas) - 1
    for i in range(n):
        s = sigmas[i]
        d = _derivative(x, s, denoise(x, s))
        down, up = ancestral_split(s, sigmas[i + 1])
        if down == 0:
            x = x + d * (down - s)
        else:
            x = _midpoint_step(denoise, x, s, down, d) + noise.step() * up
        _tell(progress, i, n)
    return x


def lms_coefficients(sigmas: List[float], i: int, order: int) -> List[float]:
    """Integrals over [sigma_i, sigma_i+1] of the Lagrange basis polynomials through the last `order`
    sigmas; coefficient j weighs the derivative of j steps ago. Gauss-Legendre with `order` nodes is
    exact for these polynomials (degree order - 1)."""
    nodes, weights = np.polynomial.legendre.leggauss(order)
    a, b = sigmas[i], sigmas[i + 1]
    taus = (b - a) / 2 * nodes + (a + b) / 2
    coefficients = []
    for j in range(order):
        basis = np.ones_like(taus)
        for k in range(order):
            if k != j:
                basis *= (taus - sigmas[i - k]) / (sigmas[i - j] - sigmas[i - k])
        coefficients.append(float((b - a) / 2 * np.sum(weights * basis)))
    return coefficients


def lms(denoise: Denoise, x, sigmas, noise=None, progress: Progress = None, order: int = 4):
    n = len(sigmas) - 1
    levels = [float(s) for s in sigmas]
    history: List[torch.Tensor] = []  # derivatives, newest last
    for i in range(n):
        x0 = denoise(x, sigmas[i])
        history = (history + [_derivative(x, sigmas[i], x0)])[-order:]
        if sigmas[i + 1] == 0:
            x = x0
        else:
            coefficients = lms_coefficients(levels, i, min(i + 1, order))
            x = x + sum(c * d for c, d in zip(coefficients, reversed(history)))
        _tell(progress, i, n)
    return x


def _lam(sigma):
    """lambda = -log(sigma): the half log-SNR DPM-Solver steps in."""
    return sigma.log().neg()


def _sigma(lam):
    return lam.neg().exp()


def dpmpp_2s_ancestral(denoise: Denoise, x, sigmas, noise=None, progress: Progress = None):
    noise = _fresh(noise, "dpmpp_2s_ancestral")
    n = len(sigmas) - 1
    for i in range(n):
        s = sigmas[i]
        x0 = denoise(x, s)
        down, up = ancestral_split(s, sigmas[i + 1])
        if down == 0:
            x = x + _derivative(x, s, x0) * (down - s)
        else:
            lam, lam_down = _lam(s), _lam(down)
            h = lam_down - lam
            lam_mid = lam + h / 2
            x_mid = (_sigma(lam_mid) / _sigma(lam)) * x - (-h / 2).expm1() * x0
            x = (_sigma(lam_down) / _sigma(lam)) * x - (-h).expm1() * denoise(x_mid, _sigma(lam_mid))
        if sigmas[i + 1] > 0:
            x = x + noise.step() * up
        _tell(progress, i, n)
    return x


def dpmpp_2m(denoise: Denoise, x, sigmas, noise=None, progress: Progress = None):
    n = len(sigmas) - 1
    previous: Optional[torch.Tensor] = None
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = denoise(x, s)
        lam, lam_next = _lam(s), _lam(s_next)  # lam_next = inf at sigma 0: the step lands on x0
        h = lam_next - lam
        if previous is None or s_next == 0:
            x0_used = x0
        else:
            r = (lam - _lam(sigmas[i - 1])) / h
            x0_used = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previous
        x = (_sigma(lam_next) / _sigma(lam)) * x - (-h).expm1() * x0_used
        previous = x0
        _tell(progress, i, n)
    return x


def lcm(denoise: Denoise, x, sigmas, noise=None, progress: Progress = None):
    noise = _fresh(noise, "lcm")
    n = len(sigmas) - 1
    for i in range(n):
        x = denoise(x, sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise.step() * sigmas[i + 1]
        _tell(progress, i, n)
    return x


# Adams-Bashforth weights (numerators, denominator) for the newest derivative first
_ADAMS_BASHFORTH = {1: ([1], 1), 2: ([3, -1], 2), 3: ([23, -16, 5], 12), 4: ([55, -59, 37, -9], 24)}


def ipndm(denoise: Denoise, x, sigmas, noise=None, progress: Progress = None, max_order: int = 4):
    n = len(sigmas) - 1
    past: List[torch.Tensor] = []  # derivatives of earlier steps, newest last
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = denoise(x, s)
        d = (x - x0) / s
        order = min(max_order, i + 1)
        if s_next == 0:
            x_next = x0
        else:
            weights, denominator = _ADAMS_BASHFORTH[order]
            derivatives = [d] + past[::-1][: order - 1]
            x_next = x + (s_next - s) * sum(w * dd for w, dd in zip(weights, derivatives)) / denominator
        past = (past + [d])[-(max_order - 1):]
        x = x_next
        _tell(progress, i, n)
    return x


def ddpm(denoise: Denoise, x, sigmas, noise=None, progress: Progress = None):
    noise = _fresh(noise, "ddpm")
    n = len(sigmas) - 1
    for i in range(n):
        s, s_next = sigmas[i], sigmas[i + 1]
        eps = (x - denoise(x, s)) / s
        x_vp = x / (1.0 + s ** 2.0).sqrt()
        abar, abar_next = 1 / (s * s + 1), 1 / (s_next * s_next + 1)
        alpha = abar / abar_next
        x = (1.0 / alpha).sqrt() * (x_vp - (1 - alpha) * eps / (1 - abar).sqrt())
        if s_next > 0:
            x = x + ((1 - alpha) * (1.0 - abar_next) / (1.0 - abar)).sqrt() * noise.step()
            x = x * (1.0 + s_next ** 2.0).sqrt()
        _tell(progress, i, n)
    return x


STEPPERS = {
    "euler": euler,
    "euler_ancestral": euler_ancestral,
    "heun": heun,
    "dpm_2": dpm_2,
    "dpm_2_ancestral": dpm_2_ancestral,
    "lms": lms,
    "dpmpp_2s_ancestral": dpmpp_2s_ancestral,
    "dpmpp_2m": dpmpp_2m,
    "ddim": euler,  # ComfyUI's ddim sampler is Euler: in sigma space DDIM (eta 0) takes the same step
    "lcm": lcm,
    "ipndm": ipndm,
    "ddpm": ddpm,
}
