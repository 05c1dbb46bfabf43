"""The training math against values computed here, independently of the code under test: the scaled-linear
noise schedule at t = 0, 499, 999, the forward noising and the min-SNR weights the training step really
uses, learning rates at chosen steps, a LoRA's delta against (alpha / rank) * up @ down, the VAE scale of
the latent cache against the raw encoder, global gradient-norm clipping, SimpleLoRA's epoch-aligned
gradient accumulation, and posterior sampling of the cached latents.

scripts/mutants.mjs breaks each of these on purpose in a scratch copy and checks that a test here fails."""
import math
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "worker"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from PIL import Image  # noqa: E402

from lorabuild_worker.checkpoint import build_builtin  # noqa: E402

from .support import QuietCtx  # noqa: E402
from lorabuild_worker.lora import apply_lora_file, inject_lora, save_lora  # noqa: E402
from lorabuild_worker.models import get_sd1  # noqa: E402
from lorabuild_worker.ops import encode_latents  # noqa: E402
from lorabuild_worker.safetensors_io import SafetensorsFile  # noqa: E402
from lorabuild_worker.train import Dataset, Trainer, choose_precision, learning_rate, parse_params  # noqa: E402

SD_SCALE = 0.18215


def scaled_linear_alphas_cumprod():
    """SD1's DDPM schedule written out: betas linear in sqrt space 0.00085 -> 0.012 over 1000 steps."""
    betas = np.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)



class MathTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="lorabuild-math-")
        cls.model = os.path.join(cls.dir, "tiny.safetensors")
        build_builtin("tiny", 0, cls.model)
        cls.sd = get_sd1(cls.model)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    # -- helpers --------------------------------------------------------------------------------------
    def dataset(self, items=3, seed=0, hw=4):
        g = torch.Generator().manual_seed(seed)
        latents = torch.randn((items, 4, hw, hw), generator=g)
        contexts = torch.randn((items, 77, self.sd.config.unet.context_dim), generator=g)
        return Dataset.from_tensors(latents, latents.flip(-1), contexts)

    def trainer(self, data, steps=10, **over):
        params = parse_params({"rank": 4, "learning_rate": 1e-3, "batch_size": len(data), "flip": False, **over})
        trainer = Trainer(self.sd, data, params, steps, choose_precision(params))
        self.addCleanup(trainer.net.remove)
        return trainer

    def record_unet(self, trainer):
        """Every UNet call of the training step: (noisy input, timesteps, prediction)."""
        calls = []
        real = trainer.unet_forward

        def spy(x, t, context):
            pred = real(x, t, context)
            calls.append((x.detach().clone(), t.clone(), pred.detach().clone()))
            return pred

        trainer.unet_forward = spy
        return calls

    def force_timesteps(self, trainer, timesteps):
        """The step's micro-batches as drawn, with the timesteps replaced; records (latents, noise, t)."""
        drawn = []
        real = trainer.sampler.micro_batches

        def forced(step):
            for latents, noise, _t, context in real(step):
                t = torch.tensor(timesteps[: len(latents)])
                drawn.append((latents.clone(), noise.clone(), t))
                yield latents, noise, t, context

        trainer.sampler.micro_batches = forced
        return drawn

    def grads_at_optimizer_step(self, trainer):
        """The gradients the optimizer receives, per step: list of [grad per parameter]."""
        seen = []
        real = trainer.optimizer.step

        def spy(*a, **k):
            seen.append([p.grad.detach().clone() for p in trainer.net.parameters()])
            return real(*a, **k)

        trainer.optimizer.step = spy
        return seen

    # -- noise schedule and noising -------------------------------------------------------------------
    def test_scaled_linear_alphas_cumprod_at_known_timesteps(self):
        expected = scaled_linear_alphas_cumprod()
        got = self.sd.alphas_cumprod.double().numpy()
        for t, known in ((0, 0.99915), (499, 0.2776697), (999, 0.0046601)):
            self.assertAlmostEqual(expected[t], known, places=6)
            self.assertAlmostEqual(float(got[t]), known, places=6, msg=f"alphas_cumprod[{t}]")

    def test_the_training_step_noises_with_sqrt_alphas_cumprod(self):
        trainer = self.trainer(self.dataset(), max_grad_norm=0)
        drawn = self.force_timesteps(trainer, [0, 499, 999])
        calls = self.record_unet(trainer)
        trainer.train_step()
        (x0, eps, t), = drawn
        ab = torch.tensor(scaled_linear_alphas_cumprod()[t.numpy()], dtype=torch.float64)[:, None, None, None]
        expected = (ab.sqrt() * x0.double() + (1 - ab).sqrt() * eps.double()).float()
        noisy, seen_t, _ = calls[0]
        self.assertEqual(seen_t.tolist(), [0, 499, 999])
        torch.testing.assert_close(noisy, expected, rtol=1e-5, atol=1e-6)

    def test_min_snr_weights_are_min_snr_gamma_over_snr_for_epsilon_prediction(self):
        gamma = 5.0
        trainer = self.trainer(self.dataset(), min_snr_gamma=gamma, max_grad_norm=0)
        drawn = self.force_timesteps(trainer, [0, 499, 999])
        calls = self.record_unet(trainer)
        loss = trainer.train_step()
        (_, eps, t), = drawn
        _, _, pred = calls[0]
        ab = scaled_linear_alphas_cumprod()[t.numpy()]
        snr = ab / (1 - ab)
        weights = np.minimum(snr, gamma) / snr
        self.assertAlmostEqual(weights[0], gamma / (0.99915 / 0.00085), places=9)
        self.assertAlmostEqual(weights[2], 1.0, places=12)
        mse = ((pred.double() - eps.double()) ** 2).mean(dim=(1, 2, 3)).numpy()
        self.assertAlmostEqual(loss, float((weights * mse).mean()), delta=1e-5 * abs(loss))

    # -- learning rate ---------------------------------------------------------------------------------
    def test_learning_rate_at_chosen_steps(self):
        base = 1e-4

        def lr(step, total, **over):
            return learning_rate(parse_params({"learning_rate": base, **over}), step, total)

        for step in (1, 5, 10):
            self.assertEqual(lr(step, 10), base)
        # linear warmup from 0 over 4 steps (diffusers: the schedule at the steps already taken)
        self.assertEqual([lr(s, 10, warmup_steps=4) for s in range(1, 7)], [0.0, base / 4, base / 2, 3 * base / 4, base, base])
        # cosine over 10 steps: full rate first, half at the middle, a small positive rate last
        self.assertEqual(lr(1, 10, lr_scheduler="cosine"), base)
        self.assertAlmostEqual(lr(6, 10, lr_scheduler="cosine"), base * 0.5, delta=1e-15)
        self.assertAlmostEqual(lr(10, 10, lr_scheduler="cosine"), base * 0.5 * (1 + math.cos(math.pi * 0.9)), delta=1e-15)
        self.assertGreater(lr(10, 10, lr_scheduler="cosine"), 0)
        # cosine after 2 warmup steps
        self.assertEqual([lr(s, 10, lr_scheduler="cosine", warmup_steps=2) for s in (1, 2, 3)], [0.0, base / 2, base])
        self.assertAlmostEqual(lr(10, 10, lr_scheduler="cosine", warmup_steps=2), base * 0.5 * (1 + math.cos(math.pi * 7 / 8)), delta=1e-15)

    def test_the_optimizer_gets_the_scheduled_rate(self):
        trainer = self.trainer(self.dataset(), steps=8, learning_rate=1e-3, lr_scheduler="cosine", warmup_steps=2)
        rates = []
        real = trainer.optimizer.step

        def spy(*a, **k):
            rates.append(trainer.optimizer.param_groups[0]["lr"])
            return real(*a, **k)

        trainer.optimizer.step = spy
        for _ in range(4):
            trainer.train_step()
        expected = [0.0, 0.5e-3, 1e-3, 1e-3 * 0.5 * (1 + math.cos(math.pi / 6))]
        for got, want in zip(rates, expected):
            self.assertAlmostEqual(got, want, delta=1e-15)

    # -- LoRA scale -----------------------------------------------------------------------------------
    def test_lora_delta_is_alpha_over_rank_times_up_down(self):
        rank, alpha, strength = 4, 1.0, 0.7
        net = inject_lora(self.sd, "attention+proj", rank=rank, alpha=alpha, seed=3)
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for adapter in net.adapters.values():
                adapter.up.weight.copy_(torch.randn(adapter.up.weight.shape, generator=g) * 0.1)
        path = os.path.join(self.dir, "scale.safetensors")
        save_lora(net, path)
        net.remove()
        with SafetensorsFile(path) as f:
            tensors = {k: f.get(k).clone() for k in f.keys()}
        names = {module: name for name, module in _named_targets(self.sd)}
        probes = [m for m in names if isinstance(m, torch.nn.Linear)][:1] + [m for m in names if isinstance(m, torch.nn.Conv2d)][:1]
        self.assertEqual(len(probes), 2, "a Linear (to_q...) and a 1x1 conv (proj_in/out) probe")
        handle = apply_lora_file(self.sd, path, strength)
        try:
            for module in probes:
                name = names[module]
                down, up = tensors[f"{name}.lora_down.weight"], tensors[f"{name}.lora_up.weight"]
                self.assertEqual(float(tensors[f"{name}.alpha"]), alpha)
                delta_w = (alpha / rank) * strength * (up.reshape(up.shape[0], -1) @ down.reshape(rank, -1))
                if isinstance(module, torch.nn.Linear):
                    x = torch.randn((2, module.in_features), generator=g)
                    base = torch.nn.functional.linear(x, module.weight, module.bias)
                    want = base + x @ delta_w.T
                else:
                    x = torch.randn((1, module.in_channels, 3, 3), generator=g)
                    base = torch.nn.functional.conv2d(x, module.weight, module.bias)
                    want = base + torch.einsum("oi,bihw->bohw", delta_w, x)
                with torch.no_grad():
                    got = module(x)
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=f"{name}: output != base + (alpha/rank)*strength*up@down x")
        finally:
            handle.remove()

    def test_lora_init_kaiming_and_gaussian(self):
        for init, check in (("kaiming", lambda w: w.abs().max() <= 1 / math.sqrt(w[0].numel()) + 1e-7), ("gaussian", lambda w: abs(float(w.std()) - 1 / 4) < 0.02)):
            net = inject_lora(self.sd, "attention", rank=4, seed=0, init=init)
            try:
                downs = torch.cat([a.down.weight.detach().flatten() for a in net.adapters.values()])
                self.assertTrue(all(float(a.up.weight.abs().max()) == 0 for a in net.adapters.values()), init)
                first = next(iter(net.adapters.values())).down.weight.detach()
                self.assertTrue(check(first) if init == "kaiming" else check(downs), init)
            finally:
                net.remove()

    # -- VAE scale of the latent cache ----------------------------------------------------------------
    def test_cached_latents_are_the_posterior_mean_times_0_18215(self):
        image = os.path.join(self.dir, "img.png")
        yy, xx = np.mgrid[0:32, 0:32]
        Image.fromarray((np.stack([xx * 8, yy * 8, (xx + yy) * 4], -1) % 256).astype(np.uint8)).save(image)
        out = os.path.join(self.dir, "img.latent.safetensors")
        encode_latents.run({"model": self.model, "resolution": 32, "items": [{"image": image, "out": out}]}, QuietCtx())
        with SafetensorsFile(out) as f:
            latent, logvar = f.get("latent").clone(), f.get("logvar").clone()
        pixels = torch.from_numpy(np.asarray(Image.open(image).convert("RGB"), dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
        with torch.no_grad():
            moments = self.sd.vae.quant_conv(self.sd.vae.encoder(pixels))
            raw_mean, raw_logvar = moments[:, :4], moments[:, 4:]
            # (the op encodes the image and its mirror as one batch: BLAS rounding differs in the last digits)
            torch.testing.assert_close(latent, SD_SCALE * raw_mean[0], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(logvar, raw_logvar[0].clamp(-30, 20), rtol=1e-4, atol=1e-5)
            # decoding the cached latent is the raw decoder on the unscaled mean: the scale round-trips
            decoded = self.sd.decode_latents(latent[None])
            raw = ((self.sd.vae.decoder(self.sd.vae.post_quant_conv(raw_mean)) + 1) / 2).clamp(0, 1)
            torch.testing.assert_close(decoded, raw, rtol=1e-4, atol=1e-5)

    # -- gradient clipping -----------------------------------------------------------------------------
    def test_clipping_scales_the_global_gradient_norm(self):
        data = self.dataset()
        free = self.trainer(data, max_grad_norm=0)
        unclipped = self.grads_at_optimizer_step(free)
        free.train_step()
        free.net.remove()
        norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in unclipped[0]))
        limit = norm / 7  # well below the norm, so the clip acts
        clipped_trainer = self.trainer(data, max_grad_norm=limit)
        clipped = self.grads_at_optimizer_step(clipped_trainer)
        clipped_trainer.train_step()
        clipped_trainer.net.remove()
        factor = limit / (norm + 1e-6)
        for before, after in zip(unclipped[0], clipped[0]):
            torch.testing.assert_close(after, before * factor, rtol=1e-4, atol=1e-9)
        after_norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in clipped[0]))
        self.assertAlmostEqual(after_norm, limit, delta=1e-4 * limit)
        # above the norm nothing changes
        loose = self.trainer(data, max_grad_norm=norm * 2)
        kept = self.grads_at_optimizer_step(loose)
        loose.train_step()
        for before, after in zip(unclipped[0], kept[0]):
            torch.testing.assert_close(after, before, rtol=0, atol=0)

    # -- gradient accumulation -------------------------------------------------------------------------
    def test_accumulation_follows_simplelora_epochs(self):
        # 5 items, batch 2, accumulation 2: an epoch is micro-batches of 2, 2, 1; step 1 takes the first
        # two, step 2 the short one alone (accumulation restarts with the next epoch)
        data = self.dataset(items=5)
        trainer = self.trainer(data, batch_size=2, gradient_accumulation=2, max_grad_norm=0)
        sizes = [[len(idx) for idx in trainer.sampler.micro_batch_items(step)] for step in range(1, 7)]
        self.assertEqual(sizes, [[2, 2], [1], [2, 2], [1], [2, 2], [1]])
        for epoch in range(3):
            seen = sorted(int(i) for step in (2 * epoch + 1, 2 * epoch + 2) for idx in trainer.sampler.micro_batch_items(step) for i in idx)
            self.assertEqual(seen, [0, 1, 2, 3, 4], f"epoch {epoch} sees every item once")
        first_epoch = [int(i) for s in (1, 2) for idx in trainer.sampler.micro_batch_items(s) for i in idx]
        second_epoch = [int(i) for s in (3, 4) for idx in trainer.sampler.micro_batch_items(s) for i in idx]
        self.assertNotEqual(first_epoch, second_epoch, "each epoch is a fresh permutation")

    def test_a_partial_step_divides_its_loss_by_the_full_accumulation(self):
        data = self.dataset(items=5)
        trainer = self.trainer(data, batch_size=2, gradient_accumulation=2, max_grad_norm=0, learning_rate=1e-4)
        trainer.train_step()
        drawn = self.force_timesteps(trainer, [100, 900])
        grads = self.grads_at_optimizer_step(trainer)
        params = list(trainer.net.parameters())
        before = [p.detach().clone() for p in params]
        trainer.train_step()  # step 2: one micro-batch of one item
        self.assertEqual(len(drawn), 1)
        (x0, eps, t), = drawn
        # recompute that micro-batch's gradient by hand: MSE of the prediction, divided by gradient_accumulation (2)
        ab = torch.tensor(scaled_linear_alphas_cumprod()[t.numpy()], dtype=torch.float32)[:, None, None, None]
        noisy = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        idx = trainer.sampler.micro_batch_items(2)[0]
        with torch.no_grad():
            for p, value in zip(params, before):
                p.copy_(value)
                p.grad = None
        loss = ((trainer.sd.unet_model(noisy, t, data.contexts[idx]) - eps) ** 2).mean() / 2
        loss.backward()
        for got, p in zip(grads[0], params):
            torch.testing.assert_close(got, p.grad, rtol=1e-4, atol=1e-10)

    # -- posterior sampling ----------------------------------------------------------------------------
    def test_latents_sample_draws_mean_plus_scaled_std_noise_deterministically(self):
        g = torch.Generator().manual_seed(2)
        mean = torch.randn((4, 4, 8, 8), generator=g)
        logvar = torch.full_like(mean, math.log(0.25))  # std 0.5 (unscaled): exp(logvar) would give 0.25
        contexts = torch.randn((4, 77, self.sd.config.unet.context_dim), generator=g)

        def latents_of(mode, seed, steps):
            data = Dataset(mean, mean, contexts, None, logvar, logvar)
            trainer = self.trainer(data, latents=mode, seed=seed, max_grad_norm=0)
            out = []
            for step in steps:
                for latents, _n, _t, _c in trainer.sampler.micro_batches(step):
                    out.append(latents)
            trainer.net.remove()
            return torch.cat(out)

        means = latents_of("mean", 0, range(1, 6))
        sampler = self.trainer(Dataset(mean, mean, contexts), max_grad_norm=0).sampler
        orders = torch.cat([mean[idx] for step in range(1, 6) for idx in sampler.micro_batch_items(step)])
        torch.testing.assert_close(means, orders, rtol=0, atol=0)
        sampled = latents_of("sample", 0, range(1, 6))
        again = latents_of("sample", 0, range(1, 6))
        self.assertTrue(torch.equal(sampled, again), "same (seed, step) -> same sample")
        z = (sampled - orders) / (SD_SCALE * 0.5)
        self.assertLess(abs(float(z.mean())), 0.1)
        self.assertLess(abs(float(z.std()) - 1.0), 0.06, f"posterior noise std {float(z.std()):.3f} (want 1)")
        self.assertFalse(torch.equal(latents_of("sample", 1, [1]), sampled[:4]), "another seed draws another sample")
        self.assertFalse(torch.equal(latents_of("sample", 0, [2]), sampled[:4]), "another step draws another sample")


def _named_targets(sd):
    from lorabuild_worker.lora import unet_target_modules

    return list(unet_target_modules(sd, "attention+proj").items())


if __name__ == "__main__":
    unittest.main()
