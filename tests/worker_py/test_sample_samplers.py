"""Samplers against an analytic denoiser: Gaussian data, whose exact denoiser and exact
probability-flow ODE solution are known in closed form.

Data x0 ~ N(mu, s^2) per element. At noise level sigma the exact denoiser is
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

import torch  # noqa: E402

torch.set_num_threads(1)

from lorabuild_worker import samplers as S  # noqa: E402

MU, STD = 0.7, 0.5


def gaussian_denoiser(x, sigma):
    s2 = STD * STD
    return MU + (x - MU) * (s2 / (s2 + float(sigma) ** 2))


def exact_ode_end(x_start, sigma_start):
    return MU + (x_start - MU) * (STD / math.sqrt(STD * STD + sigma_start ** 2))


def schedule():
    return S.Schedule(S.scaled_linear_alphas_cumprod())


def run_deterministic(sampler, steps, seeds=(0, 1, 2, 3)):
    sched = schedule()
    noise = S.CellNoise(seeds, (4, 8, 8), dtype=torch.float64)
    sigmas = S.sigmas_for(sampler, sched, steps).to(torch.float64)
    x_start = noise.initial() * float(sigmas[0])
    fn = {"euler": S.sample_euler, "ddim": S.sample_ddim, "dpmpp_2m_karras": S.sample_dpmpp_2m}[sampler]
    out = fn(gaussian_denoiser, x_start.clone(), sigmas)
    return out, exact_ode_end(x_start, float(sigmas[0]))


class ScheduleTest(unittest.TestCase):
    def test_sd1_sigma_range(self):
        sched = schedule()
        # Known values of SD1's scaled-linear schedule.
        self.assertAlmostEqual(sched.sigma_min, 0.0292, places=3)
        self.assertAlmostEqual(sched.sigma_max, 14.6146, places=3)

    def test_sigma_t_roundtrip(self):
        sched = schedule()
        t = torch.tensor([0.0, 0.5, 10.25, 500.0, 998.9, 999.0], dtype=torch.float64)
        back = sched.sigma_to_t(sched.t_to_sigma(t))
        self.assertTrue(torch.allclose(back, t, atol=1e-6), back)
        # integer timesteps hit the table exactly
        self.assertAlmostEqual(float(sched.t_to_sigma(torch.tensor(321.0))), float(sched.sigmas[321]), places=9)

    def test_schedules_are_decreasing_and_end_at_zero(self):
        sched = schedule()
        for name in S.SAMPLERS:
            for steps in (1, 2, 25):
                sig = S.sigmas_for(name, sched, steps)
                self.assertEqual(len(sig), steps + 1, name)
                self.assertEqual(float(sig[-1]), 0.0)
                self.assertTrue(bool((sig[1:] < sig[:-1]).all()), f"{name} {steps}: {sig}")
        self.assertAlmostEqual(float(sched.karras(10)[0]), sched.sigma_max, places=6)
        self.assertAlmostEqual(float(sched.karras(10)[-2]), sched.sigma_min, places=6)
        # DDIM at 25 steps: timesteps 961, 921, ..., 1 (CompVis "uniform" with offset 1)
        ddim = sched.ddim(25)
        self.assertAlmostEqual(float(ddim[0]), float(sched.sigmas[961]), places=9)
        self.assertAlmostEqual(float(ddim[-2]), float(sched.sigmas[1]), places=9)

    def test_unknown_sampler_is_refused(self):
        with self.assertRaisesRegex(ValueError, "unknown sampler 'plms'"):
            S.sigmas_for("plms", schedule(), 10)


class DeterministicSamplersTest(unittest.TestCase):
    def test_they_converge_to_the_exact_ode_solution(self):
        for sampler in ("euler", "ddim", "dpmpp_2m_karras"):
            errors = []
            for steps in (10, 20, 40):
                out, exact = run_deterministic(sampler, steps)
                errors.append(float((out - exact).abs().max()))
            # error shrinks as steps grow (first order: about halves per doubling)
            self.assertLess(errors[1], errors[0] * 0.6, f"{sampler}: {errors}")
            self.assertLess(errors[2], errors[1] * 0.6, f"{sampler}: {errors}")
            self.assertLess(errors[2], 0.15 if sampler != "dpmpp_2m_karras" else 0.01, f"{sampler}: {errors}")

    def test_dpmpp_2m_is_second_order_and_beats_euler(self):
        e10 = float((lambda r: (r[0] - r[1]).abs().max())(run_deterministic("dpmpp_2m_karras", 10)))
        e20 = float((lambda r: (r[0] - r[1]).abs().max())(run_deterministic("dpmpp_2m_karras", 20)))
        eu20 = float((lambda r: (r[0] - r[1]).abs().max())(run_deterministic("euler", 20)))
        self.assertGreater(e10 / e20, 3.0, (e10, e20))  # ~4 for second order, ~2 for first
        self.assertLess(e20, eu20)

    def test_ddim_eta0_is_deterministic(self):
        a, _ = run_deterministic("ddim", 15)
        b, _ = run_deterministic("ddim", 15)
        self.assertTrue(torch.equal(a, b))

    def test_final_samples_have_the_data_statistics(self):
        out, _ = run_deterministic("dpmpp_2m_karras", 30, seeds=range(16))
        # the start x_T = sigma_max * z has mean 0, not mu: the flow keeps a fraction s / sigma_max of that gap
        sigma_max = schedule().sigma_max
        self.assertAlmostEqual(float(out.mean()), MU * (1 - STD / math.sqrt(STD ** 2 + sigma_max ** 2)), delta=0.01)
        self.assertAlmostEqual(float(out.std()), STD, delta=0.03)


class AncestralSamplerTest(unittest.TestCase):
    def run_a(self, seeds, steps=30):
        sched = schedule()
        noise = S.CellNoise(seeds, (4, 8, 8), dtype=torch.float64)
        return S.sample("euler_a", gaussian_denoiser, noise, sched, steps)

    def test_samples_approach_the_data_statistics(self):
        # Euler a is first order in the weak sense: the spread converges slowly with the steps.
        gaps = [abs(float(self.run_a(range(16), steps).std()) - STD) for steps in (30, 100, 300)]
        self.assertLess(gaps[1], gaps[0], gaps)
        self.assertLess(gaps[2], gaps[1], gaps)
        self.assertLess(gaps[2], 0.02, gaps)
        self.assertAlmostEqual(float(self.run_a(range(16), 100).mean()), MU, delta=0.03)

    def test_same_seed_same_result_and_independent_of_batch(self):
        alone = self.run_a([5])
        batched = self.run_a([9, 5, 2])
        self.assertTrue(torch.equal(alone[0], batched[1]))
        self.assertFalse(torch.equal(batched[0], batched[1]))

    def test_ancestral_noise_differs_from_deterministic_path(self):
        sched = schedule()
        det = S.sample("euler", gaussian_denoiser, S.CellNoise([3], (4, 8, 8), dtype=torch.float64), sched, 20)
        anc = S.sample("euler_a", gaussian_denoiser, S.CellNoise([3], (4, 8, 8), dtype=torch.float64), sched, 20)
        self.assertGreater(float((det - anc).abs().max()), 0.05)


class FairnessTest(unittest.TestCase):
    def test_initial_latent_depends_only_on_seed_and_size(self):
        a = S.CellNoise([42], (4, 16, 16)).initial()[0]
        b = S.CellNoise([7, 42, 8], (4, 16, 16)).initial()[1]
        c = S.initial_noise(42, (4, 16, 16))
        self.assertTrue(torch.equal(a, b))
        self.assertTrue(torch.equal(a, c))
        self.assertFalse(torch.equal(a, S.initial_noise(43, (4, 16, 16))))
        # a different size is a different latent, but still reproducible
        self.assertEqual(tuple(S.initial_noise(42, (4, 8, 8)).shape), (4, 8, 8))
        self.assertTrue(torch.equal(S.initial_noise(42, (4, 8, 8)), S.initial_noise(42, (4, 8, 8))))

    def test_noise_is_drawn_on_cpu_then_moved(self):
        # The global RNG must not influence the draw (a CPU generator per cell is used).
        torch.manual_seed(123)
        a = S.initial_noise(1, (4, 4, 4))
        torch.manual_seed(999)
        torch.randn(10)
        b = S.initial_noise(1, (4, 4, 4))
        self.assertTrue(torch.equal(a, b))
        half = S.CellNoise([1], (4, 4, 4), dtype=torch.float16).initial()
        self.assertEqual(half.dtype, torch.float16)
        self.assertTrue(torch.equal(half[0], a.to(torch.float16)))


class ModelDenoiserTest(unittest.TestCase):
    """The UNet wrapper: scaling of the input, sigma -> timestep, eps/v conversion, CFG batching."""

    def analytic_unet(self, sched, prediction, shift_cond=0.0):
        calls = []

        def unet(x_in, t, context):
            calls.append((x_in.shape[0], context.shape[0]))
            sigma = sched.t_to_sigma(t.to(torch.float64)).to(x_in.dtype).view(-1, 1, 1, 1)
            x = x_in * (sigma * sigma + 1).sqrt()
            # context[:, 0, 0] selects the data mean: uncond rows hold 0, cond rows hold 1
            mu = MU + shift_cond * context[:, 0, 0].view(-1, 1, 1, 1)
            s2 = STD * STD
            x0 = mu + (x - mu) * (s2 / (s2 + sigma * sigma))
            eps = (x - x0) / sigma
            if prediction == "eps":
                return eps
            alpha = 1 / (sigma * sigma + 1).sqrt()
            sig_vp = sigma * alpha
            return alpha * eps - sig_vp * x0  # v = alpha_t * eps - sigma_t * x0 in VP terms

        return unet, calls

    def guidance(self, batch, scale):
        cond = torch.ones(batch, 77, 8, dtype=torch.float64)
        uncond = torch.zeros(batch, 77, 8, dtype=torch.float64)
        return S.Guidance(cond=cond, uncond=uncond, scale=scale)

    def test_eps_and_v_recover_the_exact_denoiser(self):
        sched = schedule()
        x = torch.randn(2, 4, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
        for prediction in ("eps", "v"):
            unet, _ = self.analytic_unet(sched, prediction)
            den = S.ModelDenoiser(unet, sched, self.guidance(2, 1.0), prediction=prediction)
            for sigma in (0.1, 1.0, 5.0):
                got = den(x, torch.tensor(sigma))
                want = gaussian_denoiser(x, sigma)
                self.assertTrue(torch.allclose(got, want, atol=1e-6), f"{prediction} sigma={sigma}")

    def test_cfg_batches_uncond_and_cond_and_extrapolates(self):
        sched = schedule()
        unet, calls = self.analytic_unet(sched, "eps", shift_cond=1.0)
        den = S.ModelDenoiser(unet, sched, self.guidance(3, 7.5))
        x = torch.zeros(3, 4, 2, 2, dtype=torch.float64)
        sigma = 2.0
        got = den(x, torch.tensor(sigma))
        self.assertEqual(calls, [(6, 6)])  # one UNet call with cond and uncond together
        s2 = STD * STD
        k = s2 / (s2 + sigma * sigma)
        d_uncond = MU * (1 - k)
        d_cond = (MU + 1.0) * (1 - k)
        want = d_uncond + 7.5 * (d_cond - d_uncond)
        self.assertTrue(torch.allclose(got, torch.full_like(got, want), atol=1e-6))

    def test_cfg_1_skips_the_uncond_pass(self):
        sched = schedule()
        unet, calls = self.analytic_unet(sched, "eps")
        den = S.ModelDenoiser(unet, sched, self.guidance(2, 1.0))
        den(torch.zeros(2, 4, 2, 2, dtype=torch.float64), torch.tensor(1.0))
        self.assertEqual(calls, [(2, 2)])

    def test_full_sampling_through_the_wrapper_converges(self):
        sched = schedule()
        unet, _ = self.analytic_unet(sched, "eps")
        den = S.ModelDenoiser(unet, sched, self.guidance(4, 1.0))
        noise = S.CellNoise([0, 1, 2, 3], (4, 8, 8), dtype=torch.float64)
        steps = []
        out = S.sample("dpmpp_2m_karras", den, noise, sched, 30, callback=lambda i, n: steps.append((i, n)))
        x_start = S.CellNoise([0, 1, 2, 3], (4, 8, 8), dtype=torch.float64).initial() * sched.sigma_max
        exact = exact_ode_end(x_start, sched.sigma_max)
        self.assertLess(float((out - exact).abs().max()), 0.02)
        self.assertEqual(steps[-1], (30, 30))
        self.assertEqual(len(steps), 30)


if __name__ == "__main__":
    unittest.main()
