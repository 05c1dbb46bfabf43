"""devices: N — training as N processes through torch.distributed.run + DDP (gloo on CPU): equal to one
process at the same global batch within 1e-6 after 10 steps (also when an epoch's last micro-batch
is short and splits unevenly); a cancelled DDP run resumes under DDP to
the same bytes as an uninterrupted one; only rank 0 writes."""
import hashlib
import json
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
from lorabuild_worker.ops import encode_latents, encode_text  # noqa: E402
from lorabuild_worker.ops import train as train_op  # noqa: E402
from lorabuild_worker.safetensors_io import load_file, read_header  # noqa: E402


def byte_ids(text):
    ids = [49406] + list(text.encode("utf-8"))[:75] + [49407]
    return ids + [49407] * (77 - len(ids))


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Ctx:
    """The serving worker's context; ``cancel_when`` decides from the progress seen so far."""

    def __init__(self, cancel_when=None):
        self.progress_events, self.checkpoints, self.logs = [], [], []
        self.cancel_when = cancel_when
        self.device = "cpu"

    def progress(self, step, total, **extra):
        self.progress_events.append((step, total, extra))

    def log(self, message):
        self.logs.append(message)

    def checkpoint(self, step, path):
        self.checkpoints.append((step, path))

    def cancelled(self):
        return self.cancel_when is not None and self.cancel_when(self)


class DdpTrainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="lorabuild-ddp-")
        cls.model = os.path.join(cls.dir, "tiny.safetensors")
        build_builtin("tiny", 0, cls.model)
        rng = np.random.default_rng(1)
        images, texts = [], []
        for i in range(4):
            path = os.path.join(cls.dir, f"{i}.png")
            yy, xx = np.mgrid[0:64, 0:64]
            blob = np.exp(-((xx - rng.uniform(10, 54)) ** 2 + (yy - rng.uniform(10, 54)) ** 2) / 200.0)[..., None] * rng.uniform(0, 255, 3)
            Image.fromarray(blob.astype(np.uint8)).save(path)
            images.append({"image": path, "out": os.path.join(cls.dir, f"{i}.latent.safetensors")})
            texts.append({"ids": byte_ids(f"picture {i}"), "out": os.path.join(cls.dir, f"{i}.context.safetensors")})
        encode_latents.run({"model": cls.model, "resolution": 64, "items": images}, Ctx())
        encode_text.run({"model": cls.model, "clip_skip": 1, "items": texts}, Ctx())
        cls.items = [{"latents": i["out"], "context": t["out"]} for i, t in zip(images, texts)]
        cls.runs = 0

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def train(self, steps, devices, ctx=None, lr=None, **over):
        DdpTrainTest.runs += 1
        out = os.path.join(self.dir, f"run{DdpTrainTest.runs}")
        params = {"rank": 4, "learning_rate": 1e-3, "seed": 0, "batch_size": 2, "targets": "attention", "devices": devices, "noise_offset": 0.05, "min_snr_gamma": 5.0, **(lr or {})}
        args = {"model": self.model, "items": self.items, "params": params, "out_dir": out, "checkpoint_every": 5, "steps": steps, "metadata": {"ss_output_name": "ddp"}}
        args.update(over)
        return train_op.run(args, ctx or Ctx()), out

    def test_two_gloo_processes_equal_one_process_at_the_same_global_batch(self):
        # lr 1e-5: the two runs sum the batch in a different order (float rounding, ~1e-7 relative in
        # the gradients), and Adam turns a rounding difference of a gradient near its eps (1e-8) into
        # a step difference of up to ~lr/30 (measured: lr 1e-3 -> 3e-5 on 40 of 78,208 weights after
        # one step). At 1e-5 every weight stays within 1e-6 while the LoRA moves by ~1e-4.
        slow = {"learning_rate": 1e-5}
        one, _ = self.train(10, devices=1, lr=slow)
        ctx = Ctx()
        # the launch and torchrun make their temp folders where TMPDIR says, and leave none behind
        scratch = tempfile.mkdtemp(prefix="lorabuild-ddp-tmp-")
        saved = os.environ.get("TMPDIR")
        os.environ["TMPDIR"], tempfile.tempdir = scratch, None
        try:
            two, out = self.train(10, devices=2, ctx=ctx, lr=slow)
        finally:
            if saved is None:
                del os.environ["TMPDIR"]
            else:
                os.environ["TMPDIR"] = saved
            tempfile.tempdir = None
        left = os.listdir(scratch)
        shutil.rmtree(scratch)
        self.assertEqual(left, [], "temp folders left behind by the DDP launch")
        a, b = load_file(one["final"]), load_file(two["final"])
        self.assertEqual(sorted(a), sorted(b))
        worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
        self.assertLess(worst, 1e-6, f"largest weight difference after 10 steps: {worst:g}")
        moved = max(a[k].abs().max().item() for k in a if k.endswith("lora_up.weight"))
        self.assertGreater(moved, 5e-5, "the LoRA moved 50x more than the tolerance")
        for (s1, l1), (s2, l2) in zip(one["loss_curve"], two["loss_curve"]):
            self.assertEqual(s1, s2)
            self.assertAlmostEqual(l1, l2, places=5)
        # events came through from rank 0: progress, both checkpoints, the launcher's log line
        self.assertEqual([s for s, _ in ctx.checkpoints], [5, 10])
        self.assertEqual(ctx.progress_events[-1][0], 10)
        self.assertTrue(any("2 processes through torch.distributed.run (gloo)" in line for line in ctx.logs), ctx.logs)
        # only rank 0 wrote: one LoRA per checkpoint, one state, no stray temp files
        self.assertEqual(sorted(f for f in os.listdir(out) if f.endswith(".safetensors")), ["lora-step10.safetensors", "lora-step5.safetensors", "lora.safetensors", "state.safetensors"])

    def test_an_epochs_short_micro_batch_splits_unevenly_and_still_equals_one_process(self):
        # 3 items in batches of 2: every other step trains one item, so one rank holds it and the
        # other takes part at weight 0; epochs of 2 and 1 items (SimpleLoRA's partial last step)
        slow = {"learning_rate": 1e-5}
        one, _ = self.train(6, devices=1, lr=slow, items=self.items[:3])
        two, _ = self.train(6, devices=2, lr=slow, items=self.items[:3])
        a, b = load_file(one["final"]), load_file(two["final"])
        worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
        self.assertLess(worst, 1e-6, f"largest weight difference after 6 steps: {worst:g}")
        for (s1, l1), (s2, l2) in zip(one["loss_curve"], two["loss_curve"]):
            self.assertEqual(s1, s2)
            self.assertAlmostEqual(l1, l2, places=5)

    def test_a_cancelled_ddp_run_resumes_under_ddp_to_the_same_bytes(self):
        STEPS = 30
        # 30 steps: the relay polls every 0.1 s and the stop travels through torchrun, while the
        # tiny model trains a step in a few ms; with 12 steps the run sometimes ended first
        full, _ = self.train(STEPS, devices=2)
        # cancel once a step past the first checkpoint has been reported
        ctx = Ctx(cancel_when=lambda c: any(step >= 6 for step, _, _ in c.progress_events))
        with self.assertRaises(WorkerError) as caught:
            self.train(STEPS, devices=2, ctx=ctx)
        self.assertEqual(caught.exception.code, "cancelled")
        state = os.path.join(self.dir, f"run{DdpTrainTest.runs}", "state.safetensors")
        stopped_at = json.loads(read_header(state)[1]["lorabuild.state"])["step"]
        self.assertTrue(6 <= stopped_at < STEPS, stopped_at)
        resumed, _ = self.train(STEPS, devices=2, resume=state)
        self.assertEqual(sha(resumed["final"]), sha(full["final"]))
        self.assertEqual(resumed["loss_curve"], full["loss_curve"])

    def test_a_batch_that_does_not_split_over_the_devices_is_refused(self):
        with self.assertRaises(WorkerError) as caught:
            self.train(2, devices=2, params={"batch_size": 3, "devices": 2})
        self.assertEqual(caught.exception.code, "bad_request")
        self.assertIn("make batch_size a multiple of devices", caught.exception.hint)


if __name__ == "__main__":
    unittest.main()
