"""train: LoRA training on the builtin tiny model with real cached latents/contexts and real files.
Memorisation, bit-identical determinism, resume after cancel, extend by steps, NaN, bad requests."""
import hashlib
import json
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
from lorabuild_worker.errors import WorkerError  # noqa: E402
from lorabuild_worker.lora import apply_lora_file  # noqa: E402
from lorabuild_worker.models import get_sd1  # noqa: E402
from lorabuild_worker.ops import encode_latents, encode_text  # noqa: E402
from lorabuild_worker.ops import train as train_op  # noqa: E402
from lorabuild_worker.safetensors_io import SafetensorsFile, load_file, read_header, save_file  # noqa: E402


def byte_ids(text):
    """CLIP framing (BOS 49406, content, EOS 49407 padding); the content ids are the text's UTF-8 bytes:
    distinct ids per text are all these tests need."""
    ids = [49406] + list(text.encode("utf-8"))[:75] + [49407]
    return ids + [49407] * (77 - len(ids))


def metadata(path):
    return read_header(path)[1]


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Ctx:
    def __init__(self, cancel_after=None):
        self.progress_events = []
        self.checkpoints = []
        self.logs = []
        self.cancel_after = cancel_after
        self.device = "cpu"

    def progress(self, step, total, **extra):
        self.progress_events.append((step, total, extra))

    def log(self, message):
        self.logs.append(message)

    def checkpoint(self, step, path):
        self.checkpoints.append((step, path))

    def cancelled(self):
        # training asks once per finished step, so the n-th question comes after step n
        self.questions = getattr(self, "questions", 0) + 1
        return self.cancel_after is not None and self.questions >= self.cancel_after


class TrainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="lorabuild-train-")
        cls.model = os.path.join(cls.dir, "tiny.safetensors")
        build_builtin("tiny", 0, cls.model)
        rng = np.random.default_rng(0)
        images, texts = [], []
        for i in range(3):
            path = os.path.join(cls.dir, f"{i}.png")
            # smooth colour blobs, different per image, non-square so resize+crop is exercised
            yy, xx = np.mgrid[0:72, 0:96]
            cx, cy = rng.uniform(20, 76), rng.uniform(16, 56)
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 300.0)[..., None] * rng.uniform(0, 255, 3)
            Image.fromarray(blob.astype(np.uint8)).save(path)
            images.append({"image": path, "out": os.path.join(cls.dir, f"{i}.latent.safetensors")})
            texts.append({"ids": byte_ids(f"one-line-art, picture {i}"), "out": os.path.join(cls.dir, f"{i}.context.safetensors")})
        texts.append({"ids": byte_ids(""), "out": os.path.join(cls.dir, "empty.context.safetensors")})
        encode_latents.run({"model": cls.model, "resolution": 64, "items": images}, Ctx())
        encode_text.run({"model": cls.model, "clip_skip": 1, "items": texts}, Ctx())
        cls.items = [{"latents": i["out"], "context": t["out"]} for i, t in zip(images, texts)]
        cls.empty = texts[-1]["out"]
        cls.runs = 0

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def train(self, steps, ctx=None, items=None, every=5, **over):
        TrainTest.runs += 1
        out = os.path.join(self.dir, f"run{TrainTest.runs}")
        params = {"rank": 4, "learning_rate": 1e-3, "seed": 0, "batch_size": 1, "targets": "attention"}
        params.update(over.pop("params", {}))
        args = {
            "model": self.model,
            "items": items or self.items,
            "params": params,
            "out_dir": out,
            "checkpoint_every": every,
            "steps": steps,
            "metadata": {"ss_output_name": "test_lora", "ss_dataset_hash": "abc"},
        }
        args.update(over)
        return train_op.run(args, ctx or Ctx()), out

    def test_encode_caches_hold_both_flip_states(self):
        with SafetensorsFile(self.items[0]["latents"]) as f:
            latent, flipped = f.get("latent"), f.get("latent_flipped")
        self.assertEqual(tuple(latent.shape), (4, 8, 8))
        self.assertFalse(torch.equal(latent, flipped))
        with SafetensorsFile(self.items[0]["context"]) as f:
            self.assertEqual(tuple(f.get("context").shape), (77, 64))

    def test_loss_falls_on_a_memorisation_task(self):
        item = self.items[:1]
        result, out = self.train(60, items=item, every=60, params={"learning_rate": 1e-2, "flip": False})
        sd = get_sd1(self.model)
        latent = load_file(item[0]["latents"])["latent"][None].expand(16, -1, -1, -1)
        context = load_file(item[0]["context"])["context"][None].expand(16, -1, -1)
        g = torch.Generator().manual_seed(99)
        t = torch.randint(0, 1000, (16,), generator=g)
        noise = torch.randn(latent.shape, generator=g)
        a = sd.alphas_cumprod[t][:, None, None, None]
        noisy = a.sqrt() * latent + (1 - a).sqrt() * noise

        def held_out_loss():
            with torch.no_grad():
                return torch.nn.functional.mse_loss(sd.unet(noisy, t, context), noise).item()

        before = held_out_loss()
        handle = apply_lora_file(sd, result["final"], 1.0)
        after = held_out_loss()
        handle.remove()
        self.assertLess(after, 0.9 * before, f"fixed-noise loss {before:.4f} -> {after:.4f}")
        self.assertEqual(len(result["loss_curve"]), 60)
        meta = metadata(result["final"])
        self.assertEqual(meta["ss_network_dim"], "4")
        self.assertEqual(meta["ss_network_alpha"], "4.0")
        self.assertEqual(meta["ss_base_model_version"], "sd_v1")
        self.assertEqual(meta["ss_network_module"], "networks.lora")
        self.assertEqual(meta["ss_max_train_steps"], "60")
        self.assertEqual(meta["ss_resolution"], "(64, 64)")
        self.assertEqual(meta["modelspec.architecture"], "stable-diffusion-v1/lora")
        self.assertEqual(meta["ss_dataset_hash"], "abc")

    def test_same_inputs_and_seed_give_a_bit_identical_lora(self):
        recipe = {"batch_size": 2, "gradient_accumulation": 2, "lr_scheduler": "cosine", "warmup_steps": 2, "min_snr_gamma": 5.0, "noise_offset": 0.05, "caption_dropout": 0.3}
        a, _ = self.train(4, params=recipe, empty_context=self.empty)
        b, _ = self.train(4, params=recipe, empty_context=self.empty)
        c, _ = self.train(4, params={**recipe, "seed": 1}, empty_context=self.empty)
        self.assertEqual(sha(a["final"]), sha(b["final"]))
        self.assertEqual(a["loss_curve"], b["loss_curve"])
        self.assertNotEqual(sha(a["final"]), sha(c["final"]))
        self.assertTrue(all(math.isfinite(loss) for _, loss in a["loss_curve"]))

    def test_resume_after_cancel_and_extend_are_bit_identical(self):
        full, full_out = self.train(10)
        # cancelled after step 4: error 'cancelled', resumable state kept
        ctx = Ctx(cancel_after=4)
        with self.assertRaises(WorkerError) as caught:
            self.train(10, ctx=ctx)
        self.assertEqual(caught.exception.code, "cancelled")
        state = os.path.join(self._last_out(), "state.safetensors")
        info = json.loads(metadata(state)["lorabuild.state"])
        self.assertEqual(info["step"], 4)
        resumed, _ = self.train(10, resume=state)
        self.assertEqual(sha(resumed["final"]), sha(full["final"]))
        self.assertEqual(resumed["loss_curve"], full["loss_curve"])
        # a 6-step run extended to 10 steps equals the 10-step run
        short, _ = self.train(6)
        extended, extended_out = self.train(10, resume=short["state"])
        self.assertEqual(sha(extended["final"]), sha(full["final"]))
        self.assertEqual(sha(os.path.join(extended_out, "lora-step10.safetensors")), sha(os.path.join(full_out, "lora-step10.safetensors")))

    def test_gradient_checkpointing_gives_the_same_training(self):
        plain, _ = self.train(3)
        checkpointed, _ = self.train(3, params={"gradient_checkpointing": "on", "targets": "attention"})
        a, b = load_file(plain["final"]), load_file(checkpointed["final"])
        self.assertEqual(sorted(a), sorted(b))
        for key in a:
            self.assertTrue(torch.allclose(a[key], b[key], atol=1e-6), key)
        self.assertGreater(max(a[k].abs().max().item() for k in a if k.endswith("lora_up.weight")), 0, "the LoRA moved")

    def test_out_of_memory_becomes_code_oom_with_a_way_out(self):
        from lorabuild_worker import train as train_module

        original = train_module.Trainer.train_step

        def exhausted(trainer):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

        train_module.Trainer.train_step = exhausted
        try:
            with self.assertRaises(WorkerError) as caught:
                self.train(3)
        finally:
            train_module.Trainer.train_step = original
        self.assertEqual(caught.exception.code, "oom")
        for advice in ("batch_size to 1", "gradient_checkpointing", "resolution"):
            self.assertIn(advice, caught.exception.hint)
        # the shared cached model has no LoRA hooks left behind
        sd = get_sd1(self.model)
        self.assertFalse(any(m._forward_hooks for m in sd.unet_model.modules()))

    def test_compile_without_torch_compile_is_said_not_ignored(self):
        saved = getattr(torch, "compile", None)
        if saved is not None:  # torch 2.x: pretend to be 1.13
            del torch.compile
        try:
            ctx = Ctx()
            result, _ = self.train(2, ctx=ctx, params={"compile": True})
        finally:
            if saved is not None:
                torch.compile = saved
        self.assertEqual(len(result["warnings"]), 1)
        warning = result["warnings"][0]
        self.assertEqual(warning["setting"], "compile")
        self.assertIn("compile: true has no effect", warning["message"])
        self.assertIn("no torch.compile", warning["message"])
        self.assertIn(f"warning: {warning['message']}", ctx.logs)
        plain, _ = self.train(2)
        self.assertEqual(plain["warnings"], [])

    def _last_out(self):
        return os.path.join(self.dir, f"run{TrainTest.runs}")

    def test_checkpoints_are_written_and_announced(self):
        ctx = Ctx()
        result, out = self.train(7, ctx=ctx, every=3)
        self.assertEqual([s for s, _ in ctx.checkpoints], [3, 6, 7])
        for step, path in ctx.checkpoints:
            self.assertEqual(path, os.path.join(out, f"lora-step{step}.safetensors"))
            self.assertEqual(metadata(path)["ss_steps"], str(step))
        self.assertEqual(sorted(os.listdir(out)), ["lora-step3.safetensors", "lora-step6.safetensors", "lora-step7.safetensors", "lora.safetensors", "state.safetensors"])
        self.assertEqual(ctx.progress_events[-1][:2], (7, 7))
        self.assertIn("loss", ctx.progress_events[-1][2])
        self.assertEqual(result["state"], os.path.join(out, "state.safetensors"))

    def test_nan_loss_stops_and_keeps_the_good_checkpoints(self):
        bad = os.path.join(self.dir, "nan.latent.safetensors")
        good = load_file(self.items[0]["latents"])
        save_file({k: torch.full_like(v, float("nan")) for k, v in good.items()}, bad)
        items = self.items + [{"latents": bad, "context": self.items[0]["context"]}]
        ctx = Ctx()
        with self.assertRaises(WorkerError) as caught:
            self.train(8, ctx=ctx, items=items, every=1)
        self.assertEqual(caught.exception.code, "nan_loss")
        out = self._last_out()
        self.assertFalse(os.path.exists(os.path.join(out, "lora.safetensors")))
        for _, path in ctx.checkpoints:
            tensors = load_file(path)
            self.assertTrue(all(torch.isfinite(t).all() for t in tensors.values()))
        if ctx.checkpoints:
            self.assertIn(ctx.checkpoints[-1][1], caught.exception.message)

    def test_bad_requests_are_refused_before_training(self):
        cases = [
            ({"params": {"targets": "everything"}}, "targets"),
            ({"params": {"learning_rate": -1}}, "learning_rate"),
            ({"params": {"caption_dropout": 0.1}}, "empty_context"),
            ({"items": [{"latents": "/nonexistent/x.safetensors", "context": "/nonexistent/y.safetensors"}]}, "/nonexistent/x.safetensors"),
        ]
        for over, fragment in cases:
            with self.subTest(fragment=fragment):
                with self.assertRaises(WorkerError) as caught:
                    self.train(2, **over)
                self.assertIn(fragment, caught.exception.message)
        short, _ = self.train(2)
        with self.assertRaises(WorkerError) as caught:
            self.train(4, resume=short["state"], params={"rank": 8})
        self.assertEqual(caught.exception.code, "bad_request")
        self.assertIn("rank 4 -> 8", caught.exception.message)
        cosine, _ = self.train(2, params={"lr_scheduler": "cosine"})
        with self.assertRaises(WorkerError) as caught:
            self.train(4, resume=cosine["state"], params={"lr_scheduler": "cosine"})
        self.assertIn("cosine", caught.exception.message)


if __name__ == "__main__":
    unittest.main()
