"""The `sample` op on the builtin tiny model: real checkpoint file, real LoRA file, real PNGs.

Run: /usr/bin/python3 -m unittest discover -s tests/worker_py -p 'test_sample*.py'
"""
import hashlib
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

from lorabuild_worker.checkpoint import build_builtin, load_sd1  # noqa: E402
from lorabuild_worker.errors import WorkerError  # noqa: E402
from lorabuild_worker.lora import inject_lora, save_lora  # noqa: E402
from lorabuild_worker.ops import sample as sample_op  # noqa: E402

from .support import kohya_lora_spec  # noqa: E402

BOS, EOS = 49406, 49407


def byte_ids(text):
    """CLIP framing (BOS, content, EOS padding); the content ids are the text's UTF-8 bytes: distinct ids
    per text are all these tests need."""
    ids = [BOS] + list(text.encode("utf-8"))[:75] + [EOS]
    return ids + [EOS] * (77 - len(ids))


class Ctx:
    def __init__(self):
        self.events = []
        self.cancel_after = None

    def progress(self, step, total, **extra):
        self.events.append((step, total))

    def log(self, message):
        pass

    def cancelled(self):
        return self.cancel_after is not None and len(self.events) >= self.cancel_after


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class SampleOpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="lorabuild-sample-")
        cls.model = os.path.join(cls.dir, "tiny.safetensors")
        build_builtin("tiny", 0, cls.model)
        # a LoRA whose up weights are non-zero, so strength visibly matters
        sd = load_sd1(cls.model)
        net = inject_lora(sd, "attention", rank=4, alpha=4.0, seed=1)
        gen = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for adapter in net.adapters.values():
                adapter.up.weight.copy_(torch.randn(adapter.up.weight.shape, generator=gen) * 0.5)
        cls.lora = os.path.join(cls.dir, "lora.safetensors")
        save_lora(net, cls.lora, {"ss_network_dim": "4"})
        net.remove()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def cell(self, name, seed=0, lora=None, sampler="euler", steps=4, cfg=5.0, prompt="a red circle", size=64):
        return {
            "cond_ids": byte_ids(prompt),
            "uncond_ids": byte_ids(""),
            "seed": seed,
            "width": size,
            "height": size,
            "sampler": sampler,
            "steps": steps,
            "cfg": cfg,
            "loras": [] if lora is None else [{"file": "lora", "strength_model": lora, "strength_clip": lora}],
            "out": os.path.join(self.dir, name),
            "parameters": f"{prompt}\nNegative prompt: \nSteps: {steps}, Sampler: {sampler}, CFG scale: {cfg}, Seed: {seed}, Size: {size}x{size}",
        }

    def render(self, cells, **extra):
        ctx = Ctx()
        extra.setdefault("lora_files", {"lora": kohya_lora_spec(self.lora)})
        result = sample_op.run({"model": self.model, "cells": cells, **extra}, ctx)
        return result, ctx

    def test_png_with_parameters_and_identical_bytes_when_rerendered(self):
        result, ctx = self.render([self.cell("a1.png", seed=3)])
        self.assertEqual(result, {"cells": [{"out": os.path.join(self.dir, "a1.png")}]})
        image = Image.open(os.path.join(self.dir, "a1.png"))
        self.assertEqual(image.size, (64, 64))
        self.assertEqual(image.mode, "RGB")
        self.assertTrue(image.text["parameters"].startswith("a red circle\nNegative prompt: \nSteps: 4"))
        self.assertEqual(ctx.events[-1], (4, 4))
        self.render([self.cell("a2.png", seed=3)])
        self.assertEqual(sha(os.path.join(self.dir, "a1.png")), sha(os.path.join(self.dir, "a2.png")))
        # a different seed gives a different image
        self.render([self.cell("a3.png", seed=4)])
        self.assertNotEqual(sha(os.path.join(self.dir, "a1.png")), sha(os.path.join(self.dir, "a3.png")))

    def test_strength_zero_equals_no_lora_and_strength_changes_the_image(self):
        cells = [
            self.cell("none.png", seed=1),
            self.cell("s0.png", seed=1, lora=0),
            self.cell("s1.png", seed=1, lora=1.0),
            self.cell("sneg.png", seed=1, lora=-1.0),
            self.cell("none2.png", seed=1),
        ]
        self.render(cells)
        pix = {n: torch.tensor(list(Image.open(os.path.join(self.dir, n)).getdata())) for n in ("none.png", "s0.png", "s1.png", "sneg.png")}
        self.assertTrue(torch.equal(pix["none.png"], pix["s0.png"]))
        self.assertFalse(torch.equal(pix["none.png"], pix["s1.png"]))
        self.assertFalse(torch.equal(pix["s1.png"], pix["sneg.png"]))
        self.assertFalse(torch.equal(pix["none.png"], pix["sneg.png"]))
        # the patched weights came off: a base cell after the LoRA cells is the first one, byte for byte
        self.assertEqual(sha(os.path.join(self.dir, "none.png")), sha(os.path.join(self.dir, "none2.png")))
        self.render([self.cell("none3.png", seed=1)])
        self.assertEqual(sha(os.path.join(self.dir, "none.png")), sha(os.path.join(self.dir, "none3.png")))

    def test_batching_and_order_do_not_change_which_noise_a_cell_gets(self):
        # same seed rendered in a batch of 3 and alone: the same initial latent, so nearly the same image
        self.render([self.cell("b0.png", seed=7), self.cell("b1.png", seed=8), self.cell("b2.png", seed=9)], max_batch=4)
        self.render([self.cell("alone.png", seed=8)])
        a = torch.tensor(list(Image.open(os.path.join(self.dir, "b1.png")).getdata())).float()
        b = torch.tensor(list(Image.open(os.path.join(self.dir, "alone.png")).getdata())).float()
        self.assertLessEqual(float((a - b).abs().max()), 2.0)
        # by default the CPU renders cell by cell: the same bytes whatever else was in the request
        self.render([self.cell("c0.png", seed=7), self.cell("c1.png", seed=8), self.cell("c2.png", seed=9)])
        self.assertEqual(sha(os.path.join(self.dir, "c1.png")), sha(os.path.join(self.dir, "alone.png")))

    def test_every_sampler_renders(self):
        names = []
        for sampler in ("euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2s_ancestral", "dpmpp_2m", "lcm", "ipndm", "ddpm"):
            names.append(f"smp-{sampler}.png")
            self.render([self.cell(names[-1], seed=2, sampler=sampler, steps=3)])
        hashes = {sha(os.path.join(self.dir, n)) for n in names}
        self.assertEqual(len(hashes), len(names))

    def latents_of(self, cells, **extra):
        """The final latent of each cell (rendered one request per cell), caught before the VAE decode."""
        from lorabuild_worker.models import get_sd1
        sd = get_sd1(self.model)
        captured = []
        original = sd.decode_latents
        sd.decode_latents = lambda latents: captured.append(latents.clone()) or original(latents)
        try:
            for cell in cells:
                self.render([cell], **extra)
        finally:
            sd.decode_latents = original
        return torch.cat(captured)

    def test_a_long_prompt_is_two_chunks_and_the_second_one_counts(self):
        one = byte_ids("a red circle")
        two = [one, byte_ids("on a blue square, in heavy ink")]
        cells = [dict(self.cell("c1.png", seed=5), cond_ids=[one]), dict(self.cell("c2.png", seed=5), cond_ids=two), dict(self.cell("c3.png", seed=5), cond_ids=one)]
        latents = self.latents_of(cells)
        self.assertTrue(torch.equal(latents[0], latents[2]))  # a list of one chunk is the plain 77 ids
        self.assertGreater(float((latents[1] - latents[0]).abs().max()), 1e-3)

    def test_weights_need_the_empty_prompt_and_weight_one_changes_nothing(self):
        ids = byte_ids("a red circle")
        ones = [[1.0] * 77]
        heavy = [[1.0] + [1.5] * 12 + [1.0] * 64]
        cells = [self.cell("w0.png", seed=6), dict(self.cell("w1.png", seed=6), cond_ids=[ids], cond_weights=ones), dict(self.cell("w2.png", seed=6), cond_ids=[ids], cond_weights=heavy)]
        latents = self.latents_of(cells, empty_ids=byte_ids(""))
        self.assertTrue(torch.equal(latents[0], latents[1]))
        self.assertFalse(torch.equal(latents[0], latents[2]))
        with self.assertRaises(WorkerError) as err:
            self.render([dict(self.cell("w3.png"), cond_ids=[ids], cond_weights=heavy)])
        self.assertIn("args.empty_ids", err.exception.message)
        with self.assertRaises(WorkerError) as err:
            self.render([dict(self.cell("w4.png"), cond_ids=[ids], cond_weights=[[1.0] * 76])], empty_ids=byte_ids(""))
        self.assertIn("cells[0].cond_weights", err.exception.message)

    def test_init_image_is_encoded_and_renoised_to_denoise(self):
        from lorabuild_worker.images import load_cover
        from lorabuild_worker.models import get_sd1
        image = os.path.join(self.dir, "init.png")
        Image.fromarray((np.random.RandomState(0).rand(80, 96, 3) * 255).astype("uint8"), "RGB").save(image)
        init = get_sd1(self.model).encode_images(load_cover(image, 64, 64)[None]).float()
        cells = [dict(self.cell(f"i{k}.png", seed=1, steps=4), init_image=image, denoise=d) for k, d in enumerate((0.02, 0.5, 1.0))]
        latents = self.latents_of(cells)
        gaps = [float((latents[k] - init[0]).norm() / init[0].norm()) for k in range(3)]
        # a light touch stays near the image's latent, more denoise moves further from it
        self.assertLess(gaps[0], 0.25, gaps)
        self.assertLess(gaps[0], gaps[1])
        self.assertLess(gaps[1], gaps[2])

    def test_progress_counts_the_steps_the_scheduler_takes(self):
        ctx = Ctx()
        sample_op.run({"model": self.model, "cells": [dict(self.cell("p.png", steps=30), scheduler="ddim_uniform")]}, ctx)
        self.assertEqual(ctx.events[-1], (31, 31))  # 1000 / 30 leaves a remainder: one step more

    def test_bad_requests_name_the_cell_and_write_nothing(self):
        bad = self.cell("bad.png", sampler="plms")
        with self.assertRaises(WorkerError) as err:
            self.render([self.cell("ok.png"), bad])
        self.assertEqual(err.exception.code, "bad_request")
        self.assertIn("cells[1].sampler", err.exception.message)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "ok.png")))
        with self.assertRaises(WorkerError) as err:
            self.render([dict(self.cell("s.png"), scheduler="linear")])
        self.assertIn("cells[0].scheduler must be one of normal, karras", err.exception.message)
        with self.assertRaises(WorkerError) as err:
            self.render([dict(self.cell("d.png"), denoise=0)])
        self.assertIn("cells[0].denoise must be above 0", err.exception.message)
        with self.assertRaises(WorkerError) as err:
            self.render([dict(self.cell("ii.png"), init_image=os.path.join(self.dir, "nope.png"))])
        self.assertEqual(err.exception.code, "io")
        with self.assertRaises(WorkerError) as err:
            self.render([dict(self.cell("w.png"), width=96)])
        self.assertIn("multiples of 64", err.exception.message)
        with self.assertRaises(WorkerError) as err:
            self.render([dict(self.cell("ids.png"), cond_ids=[1, 2, 3])])
        self.assertIn("cells[0].cond_ids", err.exception.message)
        with self.assertRaises(WorkerError) as err:
            self.render([self.cell("l.png", lora=1.0)], lora_files={"lora": {"path": os.path.join(self.dir, "missing.safetensors"), "modules": []}})
        self.assertEqual(err.exception.code, "io")
        with self.assertRaises(WorkerError) as err:
            self.render([dict(self.cell("u.png"), loras=[{"file": "other", "strength_model": 1, "strength_clip": 1}])])
        self.assertIn("cells[0].loras[0].file", err.exception.message)

    def test_cancel_stops_between_steps(self):
        ctx = Ctx()
        ctx.cancel_after = 2
        with self.assertRaises(WorkerError) as err:
            sample_op.run({"model": self.model, "cells": [self.cell("c.png", steps=10)]}, ctx)
        self.assertEqual(err.exception.code, "cancelled")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "c.png")))


if __name__ == "__main__":
    unittest.main()
