"""ComfyUI-faithful sampling, checked against values derived here from the published formulas (not
by calling the worker's own helpers) and against an analytic Gaussian denoiser.

Gaussian data: x0 ~ N(mu, s^2) per element. At noise level sigma the exact denoiser is
    D(x, sigma) = mu + s^2 / (s^2 + sigma^2) * (x - mu)
and the ODE dx/dsigma = (x - D) / sigma keeps (x - mu) / sqrt(s^2 + sigma^2) constant, so a
deterministic sampler started at x_T must end at mu + (x_T - mu) * s / sqrt(s^2 + sigma_T^2).

Run: /usr/bin/python3 -m unittest discover -s tests/worker_py -p 'test_sample*.py'
"""
import math
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "worker"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from lorabuild_worker import samplers as S  # noqa: E402
from lorabuild_worker.samplers import steppers  # noqa: E402

MU, STD = 0.7, 0.5
DETERMINISTIC = ("euler", "heun", "dpm_2", "lms", "dpmpp_2m", "ddim", "ipndm")
ANCESTRAL = ("euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "ddpm", "lcm")


def gaussian_denoiser(x, sigma):
    s2 = STD * STD
    return MU + (x - MU) * (s2 / (s2 + float(sigma) ** 2))


def exact_ode_end(x_start, sigma_start):
    return MU + (x_start - MU) * (STD / math.sqrt(STD * STD + sigma_start ** 2))


# ---- SD1's discrete table and the schedules, from the formulas (float64, numpy) -------------------

def sd1_table():
    """sigma_t = sqrt((1 - abar_t) / abar_t), betas linear in sqrt from 0.00085 to 0.012 (DDPM, SD1)."""
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
    abar = np.cumprod(1.0 - betas)
    return np.sqrt((1.0 - abar) / abar)


TABLE = sd1_table()


def at_timestep(t):
    """log-linear interpolation of the table at a fractional timestep."""
    lo = int(math.floor(t))
    hi = min(lo + 1, 999)
    w = t - lo
    return math.exp((1 - w) * math.log(TABLE[lo]) + w * math.log(TABLE[hi]))


def beta_median_aware_ppf(q, a=0.6, b=0.6):
    """Quantile of Beta(a, b) (a, b > 1/2) from its CDF integrated numerically after x = sin^2(theta),
    which makes the integrand 2 sin^(2a-1) cos^(2b-1) bounded (a different method from the worker's
    continued fraction). The median of a symmetric Beta is 1/2 exactly."""
    if a == b and q == 0.5:
        return 0.5
    theta = np.linspace(0.0, math.pi / 2, 400_001)
    f = 2 * np.sin(theta) ** (2 * a - 1) * np.cos(theta) ** (2 * b - 1)
    f[0] = f[-1] = 0.0  # both powers are positive: the integrand vanishes at the ends
    cdf = np.concatenate([[0.0], np.cumsum((f[1:] + f[:-1]) / 2 * np.diff(theta))])
    cdf /= cdf[-1]
    return float(np.sin(np.interp(q, cdf, theta)) ** 2)


def expected(scheduler, n):
    smin, smax = TABLE[0], TABLE[-1]
    if scheduler == "karras":  # Karras et al. (2022) eq. 5, rho = 7
        rho = 7.0
        return [(smax ** (1 / rho) + i / (n - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho for i in range(n)] + [0.0]
    if scheduler == "exponential":
        return [math.exp(math.log(smax) + i / (n - 1) * (math.log(smin) - math.log(smax))) for i in range(n)] + [0.0]
    if scheduler == "normal":  # n timesteps evenly from 999 down to 0
        return [at_timestep(999 * (1 - i / (n - 1))) for i in range(n)] + [0.0]
    if scheduler == "sgm_uniform":  # n + 1 evenly from 999 to 0, the last dropped
        return [at_timestep(999 * (1 - i / n)) for i in range(n)] + [0.0]
    if scheduler == "simple":  # every (1000 / n)-th entry from the top
        return [TABLE[999 - math.floor(i * 1000 / n)] for i in range(n)] + [0.0]
    if scheduler == "ddim_uniform":  # entries 1, 1 + 1000 // n, ... below 1000, from the top
        return [TABLE[t] for t in reversed(range(1, 1000, 1000 // n))] + [0.0]
    if scheduler == "beta":  # entries at the Beta(0.6, 0.6) quantiles 1, 1 - 1/n, ..., repeats dropped
        ts = [int(np.rint(beta_median_aware_ppf(1 - i / n) * 999)) for i in range(n)]
        kept = [t for i, t in enumerate(ts) if i == 0 or t != ts[i - 1]]
        return [TABLE[t] for t in kept] + [0.0]
    raise KeyError(scheduler)


class SigmaTableTest(unittest.TestCase):
    def test_the_discrete_table(self):
        sched = S.DiscreteSchedule()
        self.assertEqual(len(sched), 1000)
        np.testing.assert_allclose(sched.sigmas.double().numpy(), TABLE, rtol=1e-6)
        self.assertAlmostEqual(sched.sigma_min, 0.0292, places=3)
        self.assertAlmostEqual(sched.sigma_max, 14.6146, places=3)

    def test_every_scheduler_at_20_and_30_steps(self):
        sched = S.DiscreteSchedule()
        for scheduler in ("normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta"):
            for n in (20, 30):
                with self.subTest(scheduler=scheduler, steps=n):
                    got = S.scheduler_sigmas(sched, scheduler, n).double().numpy()
                    want = np.array(expected(scheduler, n))
                    self.assertEqual(len(got), len(want))
                    np.testing.assert_allclose(got, want, rtol=2e-6, atol=0)

    def test_known_shapes(self):
        sched = S.DiscreteSchedule()
        # ddim_uniform adds a step when 1000 / steps leaves a remainder: 31 sigmas (+ 0) for 30 steps
        self.assertEqual(len(S.scheduler_sigmas(sched, "ddim_uniform", 30)), 32)
        self.assertEqual(len(S.scheduler_sigmas(sched, "ddim_uniform", 20)), 21)
        # karras and normal start at sigma_max and end at sigma_min before the final 0
        for name in ("karras", "normal", "exponential"):
            sig = S.scheduler_sigmas(sched, name, 10)
            self.assertAlmostEqual(float(sig[0]), sched.sigma_max, places=4)
            self.assertAlmostEqual(float(sig[-2]), sched.sigma_min, places=5)
            self.assertEqual(float(sig[-1]), 0.0)

    def test_schedules_decrease_and_end_at_zero(self):
        sched = S.DiscreteSchedule()
        for name in S.SCHEDULERS:
            for steps in (1, 2, 7, 25, 1000):
                sig = S.scheduler_sigmas(sched, name, steps)
                self.assertEqual(float(sig[-1]), 0.0)
                self.assertTrue(bool((sig[1:] < sig[:-1]).all()), f"{name} {steps}: {sig}")

    def test_ksampler_rules(self):
        sched = S.DiscreteSchedule()
        # dpm_2 computes one sigma more and drops the second-to-last
        longer = S.scheduler_sigmas(sched, "karras", 21)
        got = S.ksampler_sigmas(sched, "dpm_2", "karras", 20)
        self.assertTrue(torch.equal(got, torch.cat([longer[:-2], longer[-1:]])))
        self.assertEqual(len(S.ksampler_sigmas(sched, "euler", "karras", 20)), 21)
        # denoise 0.5 at 10 steps: the last 11 sigmas of a 20-step schedule
        full = S.scheduler_sigmas(sched, "normal", 20)
        self.assertTrue(torch.equal(S.ksampler_sigmas(sched, "euler", "normal", 10, 0.5), full[-11:]))
        # denoise 0.3 at 10 steps: int(10 / 0.3) = 33 steps, the last 11 kept
        self.assertTrue(torch.equal(S.ksampler_sigmas(sched, "euler", "normal", 10, 0.3), S.scheduler_sigmas(sched, "normal", 33)[-11:]))
        self.assertEqual(len(S.ksampler_sigmas(sched, "euler", "normal", 10, 0.0)), 0)

    def test_unknown_names_are_refused(self):
        with self.assertRaisesRegex(ValueError, "unknown scheduler 'linear'"):
            S.scheduler_sigmas(S.DiscreteSchedule(), "linear", 10)
        noise = S.CellNoise([0], (4, 2, 2))
        with self.assertRaisesRegex(ValueError, "unknown sampler 'plms'"):
            S.sample("plms", "normal", 10, gaussian_denoiser, noise, S.DiscreteSchedule())


class TimestepTest(unittest.TestCase):
    def test_the_unet_gets_the_nearest_whole_timestep(self):
        sched = S.DiscreteSchedule()
        log_table = np.log(sched.sigmas.double().numpy())
        sigmas = torch.exp(torch.linspace(math.log(0.02), math.log(20.0), 5000))
        got = sched.timestep(sigmas).numpy()
        want = np.abs(np.log(sigmas.double().numpy())[None, :] - log_table[:, None]).argmin(axis=0)
        self.assertTrue(np.array_equal(got, want))
        # a sigma between entries 500 and 501, nearer to 501 in log space, is 501: no fraction
        s = math.exp(0.3 * math.log(TABLE[500]) + 0.7 * math.log(TABLE[501]))
        self.assertEqual(int(sched.timestep(torch.tensor([s]))[0]), 501)

    def test_the_denoiser_passes_whole_timesteps_and_scales_the_input(self):
        sched = S.DiscreteSchedule()
        seen = []

        def unet(x_in, t, context):
            seen.append((x_in.clone(), t.clone()))
            return torch.zeros_like(x_in)

        den = S.ModelDenoiser(unet, sched, S.Guidance(cond=torch.ones(1, 77, 4), uncond=torch.zeros(1, 77, 4), scale=1.0))
        x = torch.full((1, 4, 2, 2), 3.0)
        sigma = torch.tensor(2.5)
        out = den(x, sigma)
        self.assertTrue(torch.equal(out, x))  # eps = 0 -> x0 = x
        x_in, t = seen[0]
        self.assertAlmostEqual(float(x_in[0, 0, 0, 0]), 3.0 / math.sqrt(2.5 ** 2 + 1), places=6)
        self.assertEqual(float(t[0]), float(np.abs(np.log(TABLE) - math.log(2.5)).argmin()))
        self.assertEqual(float(t[0]), round(float(t[0])))


class StartNoiseTest(unittest.TestCase):
    def first_input(self, scheduler, denoise=1.0, latent=None):
        seen = []

        def spy(x, sigma):
            seen.append((x.clone(), float(sigma)))
            return x

        S.sample("euler", scheduler, 5, spy, S.CellNoise([123], (4, 3, 3)), S.DiscreteSchedule(), denoise=denoise, latent=latent)
        return seen[0]

    def test_full_denoise_scales_the_seed_noise_by_sqrt_1_plus_sigma_max_squared(self):
        x, sigma = self.first_input("normal")
        noise = torch.randn((4, 3, 3), generator=torch.Generator().manual_seed(123))
        self.assertAlmostEqual(sigma, TABLE[-1], places=4)
        self.assertTrue(torch.allclose(x[0], noise * math.sqrt(1 + TABLE[-1] ** 2), rtol=1e-6))

    def test_a_schedule_below_sigma_max_scales_by_sigma_and_adds_the_latent(self):
        noise = torch.randn((4, 3, 3), generator=torch.Generator().manual_seed(123))
        x, sigma = self.first_input("ddim_uniform")  # starts at table entry 801 for 5 steps, not at the top
        self.assertAlmostEqual(sigma, TABLE[801], places=4)
        self.assertTrue(torch.allclose(x[0], noise * sigma, rtol=1e-6))
        latent = torch.full((1, 4, 3, 3), 0.25)
        x, sigma = self.first_input("normal", denoise=0.5, latent=latent)
        self.assertLess(sigma, TABLE[-1] * 0.9)
        self.assertTrue(torch.allclose(x[0], noise * sigma + 0.25, rtol=1e-6))


class NoiseStreamTest(unittest.TestCase):
    def run_a(self, sampler, seeds, steps=12):
        return S.sample(sampler, "karras", steps, gaussian_denoiser, S.CellNoise(seeds, (4, 8, 8), dtype=torch.float64), S.DiscreteSchedule())

    def test_the_ancestral_stream_is_the_seed_plus_one_generator(self):
        drawn = S.CellNoise([7], (4, 2, 2)).step()
        self.assertTrue(torch.equal(drawn[0], torch.randn((4, 2, 2), generator=torch.Generator().manual_seed(8))))

    def test_same_seed_same_result_and_independent_of_batch_mates(self):
        for sampler in ANCESTRAL:
            alone = self.run_a(sampler, [5])
            batched = self.run_a(sampler, [9, 5, 2])
            self.assertTrue(torch.equal(alone[0], batched[1]), sampler)
            self.assertTrue(torch.equal(alone, self.run_a(sampler, [5])), sampler)
            self.assertFalse(torch.equal(batched[0], batched[1]), sampler)

    def test_one_euler_ancestral_step(self):
        # eta 1: down = s1^2 / s0 and up = s1 * sqrt(s0^2 - s1^2) / s0, so that down^2 + up^2 = s1^2
        sched = S.DiscreteSchedule()
        seen = []

        def zero_x0(x, sigma):
            seen.append(x.clone())
            return torch.zeros_like(x)

        S.sample("euler_ancestral", "karras", 2, zero_x0, S.CellNoise([11], (4, 2, 2), dtype=torch.float64), sched)
        s0, s1 = [float(v) for v in S.scheduler_sigmas(sched, "karras", 2)[:2]]
        fresh = torch.randn((4, 2, 2), generator=torch.Generator().manual_seed(12)).double()
        want = seen[0][0].double() * (s1 * s1 / s0) / s0 + fresh * (s1 * math.sqrt(s0 * s0 - s1 * s1) / s0)
        self.assertTrue(torch.allclose(seen[1][0].double(), want, rtol=1e-5, atol=1e-5))

    def test_initial_latent_depends_only_on_seed_and_size(self):
        a = S.CellNoise([42], (4, 16, 16)).initial()[0]
        b = S.CellNoise([7, 42, 8], (4, 16, 16)).initial()[1]
        self.assertTrue(torch.equal(a, b))
        self.assertTrue(torch.equal(a, S.initial_noise(42, (4, 16, 16))))
        self.assertFalse(torch.equal(a, S.initial_noise(43, (4, 16, 16))))
        torch.manual_seed(999)  # the global generator plays no part
        torch.randn(10)
        self.assertTrue(torch.equal(a, S.initial_noise(42, (4, 16, 16))))


class ConvergenceTest(unittest.TestCase):
    def run_deterministic(self, sampler, steps, seeds=(0, 1, 2, 3)):
        sched = S.DiscreteSchedule()
        noise = S.CellNoise(seeds, (4, 8, 8), dtype=torch.float64)
        out = S.sample(sampler, "karras", steps, gaussian_denoiser, noise, sched)
        x_start = noise.initial().double() * math.sqrt(1 + sched.sigma_max ** 2)
        return float((out.double() - exact_ode_end(x_start, sched.sigma_max)).abs().max())

    def test_deterministic_samplers_converge_to_the_exact_ode_solution(self):
        for sampler in DETERMINISTIC:
            errors = [self.run_deterministic(sampler, steps) for steps in (10, 20, 40)]
            with self.subTest(sampler=sampler, errors=errors):
                self.assertLess(errors[1], errors[0] * 0.6)
                self.assertLess(errors[2], errors[1] * 0.6)
                self.assertLess(errors[2], 0.1 if sampler in ("euler", "ddim") else 0.01)

    def test_higher_order_samplers_beat_euler(self):
        euler = self.run_deterministic("euler", 20)
        for sampler in ("heun", "dpm_2", "lms", "dpmpp_2m", "ipndm"):
            self.assertLess(self.run_deterministic(sampler, 20), euler / 3, sampler)
        e10, e20 = self.run_deterministic("dpmpp_2m", 10), self.run_deterministic("dpmpp_2m", 20)
        self.assertGreater(e10 / e20, 3.0, (e10, e20))  # ~4 for second order, ~2 for first

    def test_ancestral_samplers_reach_the_data_statistics(self):
        for sampler in ANCESTRAL:
            if sampler == "lcm":
                continue  # a consistency sampler: right only for consistency models (see test_lcm_step)
            gaps = []
            for steps in (10, 40, 160):
                out = S.sample(sampler, "karras", steps, gaussian_denoiser, S.CellNoise(range(16), (4, 8, 8), dtype=torch.float64), S.DiscreteSchedule())
                gaps.append(abs(float(out.std()) - STD) + abs(float(out.mean()) - MU))
            with self.subTest(sampler=sampler, gaps=gaps):
                self.assertLess(gaps[2], gaps[0])
                self.assertLess(gaps[2], 0.05)


    def test_lcm_step(self):
        # each step takes the model's x0 and re-noises it to the next sigma from the ancestral stream
        sched = S.DiscreteSchedule()
        seen = []

        def spy(x, sigma):
            seen.append(x.clone())
            return torch.full_like(x, 0.5)

        out = S.sample("lcm", "normal", 3, spy, S.CellNoise([4], (4, 2, 2)), sched)
        sigmas = S.scheduler_sigmas(sched, "normal", 3)
        stream = torch.Generator().manual_seed(5)
        for i in (1, 2):
            self.assertTrue(torch.allclose(seen[i][0], 0.5 + torch.randn((4, 2, 2), generator=stream) * sigmas[i], atol=1e-6))
        self.assertTrue(torch.equal(out, torch.full_like(out, 0.5)))

    def test_one_dpm_2_step(self):
        # x0 = c * x: the second evaluation is at the geometric midpoint sqrt(s0 * s1), reached by Euler
        # from s0; the whole step then uses the derivative there: x1 = x + (1 - c) x_mid / mid * (s1 - s0)
        sched = S.DiscreteSchedule()
        c = 0.25
        calls = []

        def shrink(x, sigma):
            calls.append((x.clone().double(), float(sigma)))
            return x * c

        x_start = torch.ones(1, 4, 2, 2, dtype=torch.float64)
        s0, s1 = 8.0, 2.0
        out = steppers.dpm_2(shrink, x_start, torch.tensor([s0, s1, 0.0], dtype=torch.float64))
        mid = math.sqrt(s0 * s1)
        self.assertAlmostEqual(calls[1][1], mid, places=12)
        x_mid = 1.0 + (1 - c) / s0 * (mid - s0)
        self.assertTrue(torch.allclose(calls[1][0], torch.full_like(x_start, x_mid)))
        x1 = 1.0 + (1 - c) * x_mid / mid * (s1 - s0)
        self.assertTrue(torch.allclose(calls[2][0], torch.full_like(x_start, x1)))
        self.assertTrue(torch.allclose(out, torch.full_like(x_start, x1 * c)))  # the last step lands on x0

    def test_one_ddpm_step(self):
        # Ho et al. (2020) eqs. 6-7 in the variance-preserving frame x_vp = x / sqrt(1 + sigma^2),
        # abar = 1 / (1 + sigma^2): x_prev = posterior mean(x0, x_t) + sqrt(beta_tilde) z, where
        # beta_tilde = (1 - abar_prev) / (1 - abar) * beta; then back to x = x_vp * sqrt(1 + sigma_prev^2)
        sched = S.DiscreteSchedule()
        seen = []

        def spy(x, sigma):
            seen.append(x.clone().double())
            return torch.full_like(x, 0.5)

        S.sample("ddpm", "karras", 2, spy, S.CellNoise([3], (4, 2, 2), dtype=torch.float64), sched)
        s0, s1 = [float(v) for v in S.scheduler_sigmas(sched, "karras", 2)[:2]]
        abar, abar_prev = 1 / (1 + s0 * s0), 1 / (1 + s1 * s1)
        beta = 1 - abar / abar_prev
        x_t = seen[0][0] / math.sqrt(1 + s0 * s0)
        mean = math.sqrt(abar_prev) * beta / (1 - abar) * 0.5 + math.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar) * x_t
        z = torch.randn((4, 2, 2), generator=torch.Generator().manual_seed(4)).double()
        want = (mean + math.sqrt((1 - abar_prev) / (1 - abar) * beta) * z) * math.sqrt(1 + s1 * s1)
        self.assertTrue(torch.allclose(seen[1][0], want, rtol=1e-5, atol=1e-5))


class LmsTest(unittest.TestCase):
    def test_coefficients_integrate_the_lagrange_basis(self):
        # order 2 through sigmas s0, s1 over [s1, s2]: integrals of (t - s0)/(s1 - s0) and (t - s1)/(s0 - s1)
        s = [10.0, 6.0, 3.0]
        c = steppers.lms_coefficients(s, 1, 2)
        a, b = s[1], s[2]
        self.assertAlmostEqual(c[0], ((b - s[0]) ** 2 - (a - s[0]) ** 2) / 2 / (s[1] - s[0]), places=12)
        self.assertAlmostEqual(c[1], ((b - s[1]) ** 2 - (a - s[1]) ** 2) / 2 / (s[0] - s[1]), places=12)
        self.assertAlmostEqual(sum(steppers.lms_coefficients([9.0, 7.0, 4.0, 2.5, 1.0], 3, 4)), 1.0 - 2.5, places=12)


class GuidanceTest(unittest.TestCase):
    def analytic_unet(self, sched, prediction, shift_cond=0.0):
        calls = []

        def unet(x_in, t, context):
            calls.append((x_in.shape[0], context.shape[1]))
            sigma = sched.sigmas[t.long()].double().view(-1, 1, 1, 1)
            x = x_in.double() * (sigma * sigma + 1).sqrt()
            mu = MU + shift_cond * context[:, 0, 0].double().view(-1, 1, 1, 1)
            x0 = mu + (x - mu) * (STD ** 2 / (STD ** 2 + sigma * sigma))
            eps = (x - x0) / sigma
            if prediction == "eps":
                return eps.float()
            alpha = 1 / (sigma * sigma + 1).sqrt()
            return (alpha * eps - sigma * alpha * x0).float()

        return unet, calls

    def test_eps_and_v_recover_the_exact_denoiser_at_table_sigmas(self):
        sched = S.DiscreteSchedule()
        x = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(0)) * 3
        g = S.Guidance(cond=torch.ones(2, 77, 8), uncond=torch.zeros(2, 77, 8), scale=1.0)
        for prediction in ("eps", "v"):
            unet, _ = self.analytic_unet(sched, prediction)
            den = S.ModelDenoiser(unet, sched, g, prediction=prediction)
            for t in (50, 400, 900):
                sigma = sched.sigmas[t]
                self.assertTrue(torch.allclose(den(x, sigma), gaussian_denoiser(x, sigma), atol=1e-4), f"{prediction} t={t}")

    def test_cfg_batches_uncond_then_cond_and_extrapolates(self):
        sched = S.DiscreteSchedule()
        unet, calls = self.analytic_unet(sched, "eps", shift_cond=1.0)
        den = S.ModelDenoiser(unet, sched, S.Guidance(cond=torch.ones(3, 77, 8), uncond=torch.zeros(3, 77, 8), scale=7.5))
        sigma = sched.sigmas[300]
        got = den(torch.zeros(3, 4, 2, 2), sigma)
        self.assertEqual(calls, [(6, 77)])
        k = STD ** 2 / (STD ** 2 + float(sigma) ** 2)
        want = MU * (1 - k) + 7.5 * ((MU + 1.0) * (1 - k) - MU * (1 - k))
        self.assertTrue(torch.allclose(got, torch.full_like(got, want), atol=1e-4))

    def test_conditionings_of_different_lengths(self):
        sched = S.DiscreteSchedule()
        unet, calls = self.analytic_unet(sched, "eps", shift_cond=1.0)
        two_chunks = S.Guidance(cond=torch.ones(1, 154, 8), uncond=torch.zeros(1, 77, 8), scale=2.0)
        S.ModelDenoiser(unet, sched, two_chunks)(torch.zeros(1, 4, 2, 2), sched.sigmas[10])
        self.assertEqual(calls, [(2, 154)])  # the uncond repeated to 154 tokens, one batch
        calls.clear()
        five = S.Guidance(cond=torch.ones(1, 77 * 5, 8), uncond=torch.zeros(1, 77, 8), scale=2.0)
        S.ModelDenoiser(unet, sched, five)(torch.zeros(1, 4, 2, 2), sched.sigmas[10])
        self.assertEqual(sorted(calls), [(1, 77), (1, 385)])  # more than 4x apart: two passes
        calls.clear()
        S.ModelDenoiser(unet, sched, S.Guidance(cond=torch.ones(2, 77, 8), uncond=torch.zeros(2, 77, 8), scale=1.0))(torch.zeros(2, 4, 2, 2), sched.sigmas[10])
        self.assertEqual(calls, [(2, 77)])  # cfg 1: no uncond pass


if __name__ == "__main__":
    unittest.main()
