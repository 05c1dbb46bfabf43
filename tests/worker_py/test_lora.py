"""lora: kohya names/shapes for SD1.5 against sd1-kohya.yaml, and apply_lora_file semantics on tiny."""
import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "worker"))

import torch  # noqa: E402
import yaml  # noqa: E402

torch.set_num_threads(1)

from lorabuild_worker.checkpoint import build_builtin, empty_sd1, load_sd1  # noqa: E402
from lorabuild_worker.diffusers_names import kohya_unet_name  # noqa: E402
from lorabuild_worker.errors import WorkerError  # noqa: E402
from lorabuild_worker.lora import apply_lora_file, inject_lora, save_lora  # noqa: E402
from lorabuild_worker.safetensors_io import load_file, read_header, save_file  # noqa: E402

KOHYA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "reference", "sd15-key-manifest", "sd1-kohya.yaml")
LEAVES = {
    "attention": re.compile(r"\.transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$"),
    "attention+proj": re.compile(r"(\.transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)|\.attentions\.\d+\.proj_(in|out))$"),
    "all-linear": re.compile(r"(\.transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff\.net\.(0\.proj|2))|\.attentions\.\d+\.proj_(in|out))$"),
}


def expected_lora(targets, rank):
    """kohya LoRA keys/shapes implied by the diffusers-named UNet in sd1-kohya.yaml."""
    with open(KOHYA) as f:
        unet = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["components"]["diffuser"]
    out = {}
    for key, spec in unet.items():
        if not key.endswith(".weight"):
            continue
        module = key[len("unet.") : -len(".weight")]
        if not LEAVES[targets].search("." + module):
            continue
        shape = spec["shape"]
        name = "lora_unet_" + module.replace(".", "_")
        tail = [1, 1] if len(shape) == 4 else []
        out[f"{name}.lora_down.weight"] = [rank, shape[1]] + tail
        out[f"{name}.lora_up.weight"] = [shape[0], rank] + tail
        out[f"{name}.alpha"] = []
    return out


class SD15LoRALayout(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="lorabuild-lora-")
        cls.sd = empty_sd1("sd15")  # meta device: names and shapes without 860M parameters

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def check(self, targets, modules):
        want = expected_lora(targets, rank=4)
        self.assertEqual(len(want), modules * 3)
        net = inject_lora(self.sd, targets, rank=4, alpha=4, device=torch.device("cpu"))
        try:
            path = os.path.join(self.dir, f"{targets}.safetensors")
            save_lora(net, path, {"ss_network_dim": "4"})
        finally:
            net.remove()
        infos, _meta, _ = read_header(path)
        self.assertEqual({k: list(v.shape) for k, v in infos.items()}, want)
        tensors = load_file(path)
        ups = [v for k, v in tensors.items() if k.endswith("lora_up.weight")]
        self.assertTrue(all(torch.count_nonzero(u) == 0 for u in ups), "up weights start at zero")
        self.assertTrue(all(v.item() == 4.0 for k, v in tensors.items() if k.endswith(".alpha")))

    def test_attention_targets(self):
        self.check("attention", 16 * 8)

    def test_attention_plus_proj_targets(self):
        self.check("attention+proj", 16 * 10)

    def test_all_linear_targets(self):
        self.check("all-linear", 16 * 12)

    def test_sd15_lora_hooks_fit_every_layer_in_a_forward_pass(self):
        net = inject_lora(self.sd, "all-linear", rank=4)  # adapters on meta too
        try:
            eps = self.sd.unet(torch.empty(1, 4, 64, 64, device="meta"), torch.zeros(1, dtype=torch.long, device="meta"), torch.empty(1, 77, 768, device="meta"))
        finally:
            net.remove()
        self.assertEqual(tuple(eps.shape), (1, 4, 64, 64))

    def test_every_unet_layer_maps_to_its_diffusers_name(self):
        with open(KOHYA) as f:
            unet = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["components"]["diffuser"]
        want = {"lora_unet_" + k[len("unet.") : -len(".weight")].replace(".", "_"): spec["shape"] for k, spec in unet.items() if k.endswith(".weight") and len(spec["shape"]) > 1}
        ours = {}
        for path, module in self.sd.unet_model.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                ours[kohya_unet_name(path)] = list(module.weight.shape)
        self.assertEqual(ours, want)


class ApplyLoRAFile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="lorabuild-apply-")
        cls.model = os.path.join(cls.dir, "tiny.safetensors")
        build_builtin("tiny", 0, cls.model)
        cls.sd = load_sd1(cls.model)
        cls.loras = []
        for seed in (1, 2):
            net = inject_lora(cls.sd, "all-linear", rank=2, alpha=1.0, seed=seed)
            with torch.no_grad():
                for p in net.parameters():
                    if p.abs().sum() == 0:
                        p.normal_(0, 0.5, generator=torch.Generator().manual_seed(seed))
            path = os.path.join(cls.dir, f"lora{seed}.safetensors")
            save_lora(net, path)
            net.remove()
            cls.loras.append(path)
        g = torch.Generator().manual_seed(0)
        cls.x = torch.randn(1, 4, 8, 8, generator=g)
        cls.t = torch.tensor([300])
        cls.ctx = torch.randn(1, 77, 64, generator=g)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def eps(self):
        with torch.no_grad():
            return self.sd.unet(self.x, self.t, self.ctx)

    def test_strength_zero_equals_the_base_model_and_remove_restores_it(self):
        base = self.eps()
        handle = apply_lora_file(self.sd, self.loras[0], 0.0)
        self.assertTrue(torch.equal(self.eps(), base))
        handle.remove()
        handle = apply_lora_file(self.sd, self.loras[0], 1.0)
        changed = self.eps()
        handle.remove()
        self.assertGreater((changed - base).abs().max().item(), 1e-3)
        self.assertTrue(torch.equal(self.eps(), base))
        self.assertEqual(len(handle.matched), 16 * 12)  # tiny has the SD1 block structure
        self.assertEqual(handle.unmatched, [])

    def test_strength_scales_the_lora_linearly_at_the_layer(self):
        layer = self.sd.unet_model.input_blocks[1][1].transformer_blocks[0].attn2.to_v
        inp = torch.randn(3, 64)
        with torch.no_grad():
            base = layer(inp)
            deltas = {}
            for strength in (1.0, -0.5, 2.0):
                handle = apply_lora_file(self.sd, self.loras[0], strength)
                deltas[strength] = layer(inp) - base
                handle.remove()
        self.assertTrue(torch.allclose(deltas[-0.5], deltas[1.0] * -0.5, atol=1e-6))
        self.assertTrue(torch.allclose(deltas[2.0], deltas[1.0] * 2.0, atol=1e-6))

    def test_several_loras_add_up(self):
        layer = self.sd.unet_model.middle_block[1].proj_in
        inp = torch.randn(1, 128, 1, 1)
        with torch.no_grad():
            base = layer(inp)
            singles = []
            for path in self.loras:
                handle = apply_lora_file(self.sd, path, 0.7)
                singles.append(layer(inp) - base)
                handle.remove()
            both = [apply_lora_file(self.sd, path, 0.7) for path in self.loras]
            combined = layer(inp) - base
            for handle in both:
                handle.remove()
        self.assertTrue(torch.allclose(combined, singles[0] + singles[1], atol=1e-6))

    def test_lora_for_another_architecture_is_refused(self):
        sd15 = empty_sd1("sd15")
        net = inject_lora(sd15, "attention", rank=4, device=torch.device("cpu"))
        path = os.path.join(self.dir, "sd15-lora.safetensors")
        save_lora(net, path)
        base = self.eps()
        with self.assertRaises(WorkerError) as caught:
            apply_lora_file(self.sd, path, 1.0)
        self.assertEqual(caught.exception.code, "unsupported_model")
        self.assertIn("tiny", caught.exception.message)
        self.assertTrue(torch.equal(self.eps(), base), "nothing is attached after a refusal")

    def test_file_without_lora_tensors_is_refused(self):
        path = os.path.join(self.dir, "not-lora.safetensors")
        save_file({"weight": torch.zeros(2)}, path)
        with self.assertRaises(WorkerError) as caught:
            apply_lora_file(self.sd, path, 1.0)
        self.assertIn("lora_down", caught.exception.message)


if __name__ == "__main__":
    unittest.main()
