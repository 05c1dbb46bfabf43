"""lora_patch: every adapter kind patches the tiny model's weights to the closed form W + s * scale * dW
(worked out here in float64 numpy, independently of the worker's torch code), stacks apply in order,
strength 0 and restore() leave the model bit for bit, and misfits fail before any weight changes.

Run: /usr/bin/python3 -m unittest tests.worker_py.test_lora_patch
"""
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "worker"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from lorabuild_worker.checkpoint import build_builtin, load_sd1  # noqa: E402
from lorabuild_worker.errors import WorkerError  # noqa: E402
from lorabuild_worker.lora import _module_index  # noqa: E402
from lorabuild_worker.lora_patch import LoraFile, LoraFiles, WeightPatcher  # noqa: E402
from lorabuild_worker.safetensors_io import save_file  # noqa: E402

LINEAR = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"  # [64, 64] on tiny
CONV3 = "lora_unet_down_blocks_1_resnets_0_conv1"  # [64, 32, 3, 3]
CONV1 = "lora_unet_down_blocks_0_attentions_0_proj_in"  # [32, 32, 1, 1]
TEXT = "lora_te_text_model_encoder_layers_1_mlp_fc1"  # [256, 64]


def rand(gen, *shape, scale=0.2):
    return torch.randn(*shape, generator=gen) * scale


def np64(t):
    return t.double().numpy()


class PatchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="lorabuild-patch-")
        model = os.path.join(cls.dir, "tiny.safetensors")
        build_builtin("tiny", 0, model)
        cls.sd = load_sd1(model)
        cls.index = _module_index(cls.sd)
        cls.gen = torch.Generator().manual_seed(11)
        cls.count = 0

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def weight(self, target):
        return self.index[target].weight.detach().clone()

    def file(self, modules, extra=None, ignore=False):
        """modules: [(target, kind, {role: tensor})] -> a LoraFile (tensor names are arbitrary here)."""
        tensors, specs = dict(extra or {}), []
        for target, kind, roles in modules:
            names = {}
            for role, tensor in roles.items():
                name = f"{target}.{role}"
                tensors[name] = tensor
                names[role] = name
            specs.append({"target": target, "kind": kind, "tensors": names})
        PatchTest.count += 1
        path = os.path.join(self.dir, f"l{self.count}.safetensors")
        save_file(tensors, path, {})
        return LoraFile.load(self.sd, {"path": path, "modules": specs, "skip_keys": sorted(extra or {}) if ignore else []})

    def check(self, target, lora, strength, expected, tol=1e-5):
        before = self.weight(target)
        patcher = WeightPatcher(self.sd)
        patcher.apply([(lora, strength, strength)])
        try:
            got = np64(self.index[target].weight.detach())
            np.testing.assert_allclose(got, expected(np64(before)), rtol=tol, atol=tol)
            self.assertFalse(np.array_equal(got, np64(before)))
        finally:
            patcher.restore()
        self.assertTrue(torch.equal(self.weight(target), before), "restore() puts the exact original back")

    def test_kohya_lora_with_alpha_scales_by_alpha_over_rank(self):
        up, down = rand(self.gen, 64, 4), rand(self.gen, 4, 64)
        lora = self.file([(LINEAR, "lora", {"up": up, "down": down, "alpha": torch.tensor(2.0)})])
        self.check(LINEAR, lora, 0.7, lambda w: w + 0.7 * (2.0 / 4) * (np64(up) @ np64(down)))

    def test_lora_without_alpha_has_scale_one(self):
        up, down = rand(self.gen, 64, 4), rand(self.gen, 4, 64)
        lora = self.file([(LINEAR, "lora", {"up": up, "down": down})])
        self.check(LINEAR, lora, -1.3, lambda w: w - 1.3 * (np64(up) @ np64(down)))

    def test_locon_3x3_conv_and_1x1_conv(self):
        up, down = rand(self.gen, 64, 4, 1, 1), rand(self.gen, 4, 32, 3, 3)
        lora = self.file([(CONV3, "lora", {"up": up, "down": down, "alpha": torch.tensor(1.0)})])
        self.check(CONV3, lora, 1.0, lambda w: w + 0.25 * (np64(up)[:, :, 0, 0] @ np64(down).reshape(4, -1)).reshape(w.shape))
        # a 1x1 conv stored as a linear pair, as some trainers do
        up1, down1 = rand(self.gen, 32, 2), rand(self.gen, 2, 32)
        lora1 = self.file([(CONV1, "lora", {"up": up1, "down": down1})])
        self.check(CONV1, lora1, 0.5, lambda w: w + 0.5 * (np64(up1) @ np64(down1))[:, :, None, None])

    def test_locon_tucker_mid(self):
        up, mid, down = rand(self.gen, 64, 3, 1, 1), rand(self.gen, 3, 3, 3, 3), rand(self.gen, 3, 32, 1, 1)
        lora = self.file([(CONV3, "lora", {"up": up, "mid": mid, "down": down, "alpha": torch.tensor(3.0)})])
        closed = np.einsum("oa,abhw,bi->oihw", np64(up)[:, :, 0, 0], np64(mid), np64(down)[:, :, 0, 0])
        self.check(CONV3, lora, 0.8, lambda w: w + 0.8 * 1.0 * closed)

    def test_loha_linear_and_tucker_conv(self):
        w1a, w1b, w2a, w2b = rand(self.gen, 64, 4), rand(self.gen, 4, 64), rand(self.gen, 64, 4), rand(self.gen, 4, 64)
        lora = self.file([(LINEAR, "loha", {"w1a": w1a, "w1b": w1b, "w2a": w2a, "w2b": w2b, "alpha": torch.tensor(8.0)})])
        self.check(LINEAR, lora, 0.6, lambda w: w + 0.6 * 2.0 * ((np64(w1a) @ np64(w1b)) * (np64(w2a) @ np64(w2b))))
        # CP form: t [r, r, kh, kw], a [r, out], b [r, in]
        t1, a1, b1 = rand(self.gen, 2, 2, 3, 3), rand(self.gen, 2, 64), rand(self.gen, 2, 32)
        t2, a2, b2 = rand(self.gen, 2, 2, 3, 3), rand(self.gen, 2, 64), rand(self.gen, 2, 32)
        tucker = self.file([(CONV3, "loha", {"w1a": a1, "w1b": b1, "w2a": a2, "w2b": b2, "t1": t1, "t2": t2})])
        rebuild = lambda t, a, b: np.einsum("abhw,ao,bi->oihw", np64(t), np64(a), np64(b))  # noqa: E731
        self.check(CONV3, tucker, 1.0, lambda w: w + rebuild(t1, a1, b1) * rebuild(t2, a2, b2))

    def test_lokr_full_and_factorised_and_conv(self):
        w1, w2a, w2b = rand(self.gen, 8, 8), rand(self.gen, 8, 2), rand(self.gen, 2, 8)
        lora = self.file([(LINEAR, "lokr", {"w1": w1, "w2a": w2a, "w2b": w2b, "alpha": torch.tensor(1.0)})])
        self.check(LINEAR, lora, 0.9, lambda w: w + 0.9 * 0.5 * np.kron(np64(w1), np64(w2a) @ np64(w2b)))
        # both full: no rank, so no scale even with an alpha
        f1, f2 = rand(self.gen, 4, 8), rand(self.gen, 16, 8)
        full = self.file([(LINEAR, "lokr", {"w1": f1, "w2": f2, "alpha": torch.tensor(7.0)})])
        self.check(LINEAR, full, 1.0, lambda w: w + np.kron(np64(f1), np64(f2)))
        # conv: w1 [4, 4] kron w2 [16, 8, 3, 3] (Tucker t2)
        c1, t2, a2, b2 = rand(self.gen, 4, 4), rand(self.gen, 2, 2, 3, 3), rand(self.gen, 2, 16), rand(self.gen, 2, 8)
        conv = self.file([(CONV3, "lokr", {"w1": c1, "w2a": a2, "w2b": b2, "t2": t2, "alpha": torch.tensor(1.0)})])
        w2 = np.einsum("abhw,ao,bi->oihw", np64(t2), np64(a2), np64(b2))
        self.check(CONV3, conv, 1.0, lambda w: w + 0.5 * np.kron(np64(c1)[:, :, None, None], w2))

    def test_dora_renormalises_columns_to_dora_scale(self):
        up, down = rand(self.gen, 64, 4), rand(self.gen, 4, 64)
        dora = torch.rand(1, 64, generator=self.gen) + 0.5
        lora = self.file([(LINEAR, "lora", {"up": up, "down": down, "alpha": torch.tensor(4.0), "dora_scale": dora})])

        def closed(w, s):
            calc = w + 1.0 * (np64(up) @ np64(down))
            calc = calc * (np64(dora) / np.linalg.norm(calc, axis=0, keepdims=True))
            return w + s * (calc - w)

        self.check(LINEAR, lora, 1.0, lambda w: closed(w, 1.0))
        self.check(LINEAR, lora, 0.4, lambda w: closed(w, 0.4))

    def test_stack_applies_in_order_and_text_encoder_gets_strength_clip(self):
        up1, down1 = rand(self.gen, 64, 2), rand(self.gen, 2, 64)
        up2, down2 = rand(self.gen, 64, 2), rand(self.gen, 2, 64)
        tu, td = rand(self.gen, 256, 2), rand(self.gen, 2, 64)
        dora = torch.rand(1, 64, generator=self.gen) + 0.5
        first = self.file([(LINEAR, "lora", {"up": up1, "down": down1}), (TEXT, "lora", {"up": tu, "down": td})])
        second = self.file([(LINEAR, "lora", {"up": up2, "down": down2, "dora_scale": dora})])
        w0, t0 = np64(self.weight(LINEAR)), np64(self.weight(TEXT))
        patcher = WeightPatcher(self.sd)
        patcher.apply([(first, 0.5, 2.0), (second, 1.0, 1.0)])
        try:
            w1 = w0 + 0.5 * (np64(up1) @ np64(down1))
            calc = w1 + np64(up2) @ np64(down2)
            want = calc * (np64(dora) / np.linalg.norm(calc, axis=0, keepdims=True))
            np.testing.assert_allclose(np64(self.index[LINEAR].weight), want, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(np64(self.index[TEXT].weight), t0 + 2.0 * (np64(tu) @ np64(td)), rtol=1e-5, atol=1e-5)
        finally:
            patcher.restore()

    def test_strength_zero_and_strength_clip_zero_leave_weights_and_text_context_exact(self):
        ids = torch.tensor([[256] + list(b"a red circle") + [257] * 64], dtype=torch.long)
        base_context = self.sd.encode_text(ids)
        up, down, tu, td = rand(self.gen, 64, 2), rand(self.gen, 2, 64), rand(self.gen, 256, 2), rand(self.gen, 2, 64)
        lora = self.file([(LINEAR, "lora", {"up": up, "down": down}), (TEXT, "lora", {"up": tu, "down": td})])
        before = {k: m.weight.detach().clone() for k, m in self.index.items()}
        patcher = WeightPatcher(self.sd)
        self.assertEqual(patcher.apply([(lora, 0.0, 0.0)]), 0)
        self.assertTrue(all(torch.equal(m.weight, before[k]) for k, m in self.index.items()))
        self.assertEqual(patcher.apply([(lora, 1.0, 0.0)]), 1)  # UNet only
        self.assertTrue(torch.equal(self.sd.encode_text(ids), base_context), "strength_clip 0: the text context is the base's")
        self.assertEqual(patcher.apply([(lora, 0.0, 1.0)]), 1)
        self.assertFalse(torch.equal(self.sd.encode_text(ids), base_context))
        patcher.restore()
        self.assertTrue(all(torch.equal(m.weight, before[k]) for k, m in self.index.items()))
        self.assertTrue(torch.equal(self.sd.encode_text(ids), base_context))

    def test_misfits_and_unapplied_keys_fail_before_anything_is_patched(self):
        with self.assertRaises(WorkerError) as err:
            self.file([(LINEAR, "lora", {"up": rand(self.gen, 64, 4), "down": rand(self.gen, 4, 768)})])
        self.assertEqual(err.exception.code, "unsupported_model")
        self.assertIn(LINEAR, err.exception.message)
        with self.assertRaises(WorkerError) as err:
            self.file([(LINEAR, "lora", {"up": rand(self.gen, 64, 4), "down": rand(self.gen, 4, 64)})], extra={"lora_unet_nowhere.alpha": torch.tensor(1.0)})
        self.assertIn("lora_unet_nowhere.alpha", err.exception.message)
        self.file([(LINEAR, "lora", {"up": rand(self.gen, 64, 4), "down": rand(self.gen, 4, 64)})], extra={"lora_unet_nowhere.alpha": torch.tensor(1.0)}, ignore=True)
        with self.assertRaises(WorkerError) as err:
            self.file([("lora_unet_no_such_module", "lora", {"up": rand(self.gen, 4, 1), "down": rand(self.gen, 1, 4)})])
        self.assertEqual(err.exception.code, "bad_request")
        with self.assertRaises(WorkerError):
            self.file([(LINEAR, "loha", {"w1a": rand(self.gen, 64, 2), "w1b": rand(self.gen, 2, 64)})])
        with self.assertRaises(WorkerError):
            LoraFiles(self.sd, [])


if __name__ == "__main__":
    unittest.main()
