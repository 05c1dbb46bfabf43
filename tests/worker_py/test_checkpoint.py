"""checkpoint: SD1.5 key layout from the reference manifest, builtin tiny models, refusals."""
import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "worker"))

import torch  # noqa: E402
import yaml  # noqa: E402

torch.set_num_threads(1)

from lorabuild_worker.checkpoint import build_builtin, check_loadable, empty_sd1, expected_keys, inspect, load_sd1  # noqa: E402
from lorabuild_worker.configs import SD15, TINY, TOY  # noqa: E402
from lorabuild_worker.errors import WorkerError  # noqa: E402
from lorabuild_worker.safetensors_io import load_file, save_file  # noqa: E402

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "reference", "sd15-key-manifest", "sd1-ldm.yaml")
DTYPE_BYTES = {"float32": ("F32", 4), "int64": ("I64", 8), "int32": ("I32", 4)}


def load_manifest():
    with open(REFERENCE) as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["components"]


def write_sparse(path, entries, float_dtype=("F32", 4), metadata=None):
    """Header-faithful file: real header, data region left as a hole (truncate), so 1B params cost nothing."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for key in sorted(entries):
        shape, dtype = entries[key]
        name, size = float_dtype if dtype == "float32" else DTYPE_BYTES[dtype]
        n = size
        for d in shape:
            n *= d
        header[key] = {"dtype": name, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * ((8 - (8 + len(raw)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.truncate(8 + len(raw) + offset)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class SD15Layout(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="lorabuild-ckpt-")
        cls.manifest = load_manifest()
        cls.required = {}
        cls.optional = {}
        for component in cls.manifest.values():
            for key, spec in component.items():
                target = cls.optional if spec.get("optional") else cls.required
                target[key] = (spec["shape"], spec["dtype"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def test_model_code_has_exactly_the_manifest_keys_and_shapes(self):
        self.assertEqual(len(self.required), 1130)
        ours = expected_keys(SD15)
        self.assertEqual(set(ours), set(self.required))
        for key, (shape, _dtype) in self.required.items():
            self.assertEqual(ours[key], tuple(shape), key)

    def test_header_faithful_checkpoint_loads_with_nothing_missing_or_unexpected(self):
        for label, dtype in (("fp32", ("F32", 4)), ("fp16", ("F16", 2)), ("bf16", ("BF16", 2))):
            path = os.path.join(self.dir, f"sd15-{label}.safetensors")
            write_sparse(path, {**self.required, **self.optional}, dtype)  # model_ema.*, scheduler, position_ids too
            report = inspect(path)
            self.assertEqual((report.family, report.arch, report.dtype), ("sd1", "sd15", dtype[0]))
            self.assertEqual(report.missing, [])
            self.assertEqual(report.unexpected, [])
            self.assertEqual(report.mismatched, [])
            check_loadable(path, report)  # the gate load_sd1 applies before reading weights

    def test_sd15_networks_run_at_512px_on_the_meta_device(self):
        # shapes flow through the full-size UNet and VAE without allocating a single weight
        sd = empty_sd1("sd15")
        eps = sd.unet(torch.empty(2, 4, 64, 64, device="meta"), torch.zeros(2, dtype=torch.long, device="meta"), torch.empty(2, 77, 768, device="meta"))
        self.assertEqual(tuple(eps.shape), (2, 4, 64, 64))
        self.assertEqual(tuple(sd.vae.encode_mean(torch.empty(1, 3, 512, 512, device="meta")).shape), (1, 4, 64, 64))
        self.assertEqual(tuple(sd.vae.decode(torch.empty(1, 4, 64, 64, device="meta")).shape), (1, 3, 512, 512))

    def test_older_text_encoder_aliases_are_accepted(self):
        entries = {}
        for key, value in self.required.items():
            alias = key.replace("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer.")
            entries[alias] = value
        path = os.path.join(self.dir, "sd15-old-names.safetensors")
        write_sparse(path, entries, ("F16", 2))
        report = inspect(path)
        self.assertEqual((report.missing, report.unexpected, report.mismatched), ([], [], []))

    def test_missing_and_misshaped_keys_are_named(self):
        entries = dict(self.required)
        del entries["model.diffusion_model.out.2.weight"]
        entries["model.diffusion_model.input_blocks.1.1.proj_in.weight"] = ([320, 320], "float32")
        path = os.path.join(self.dir, "sd15-broken.safetensors")
        write_sparse(path, entries, ("F16", 2))
        with self.assertRaises(WorkerError) as caught:
            load_sd1(path)
        message = caught.exception.message
        self.assertEqual(caught.exception.code, "unsupported_model")
        self.assertIn("model.diffusion_model.out.2.weight", message)
        self.assertIn("proj_in.weight: file [320, 320] vs model [320, 320, 1, 1]", message)

    def test_sdxl_is_refused_with_a_clear_message(self):
        entries = {
            "model.diffusion_model.input_blocks.0.0.weight": ([320, 4, 3, 3], "float32"),
            "model.diffusion_model.label_emb.0.0.weight": ([1280, 2816], "float32"),
            "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": ([768], "float32"),
        }
        path = os.path.join(self.dir, "sdxl.safetensors")
        write_sparse(path, entries)
        with self.assertRaises(WorkerError) as caught:
            load_sd1(path)
        self.assertEqual(caught.exception.code, "unsupported_model")
        self.assertIn("this is an SDXL checkpoint; lorabuild trains SD1.x", caught.exception.message)

    def test_sd2_is_refused(self):
        entries = {k: v for k, v in self.required.items() if not k.startswith("cond_stage_model.")}
        for key in list(entries):
            if key.endswith(("attn2.to_k.weight", "attn2.to_v.weight")):
                entries[key] = ([entries[key][0][0], 1024], "float32")
        entries["cond_stage_model.model.ln_final.weight"] = ([1024], "float32")
        path = os.path.join(self.dir, "sd2.safetensors")
        write_sparse(path, entries)
        self.assertEqual(inspect(path).family, "sd2")
        with self.assertRaises(WorkerError) as caught:
            load_sd1(path)
        self.assertIn("SD2", caught.exception.message)
        self.assertIn("1024", caught.exception.message)

    def test_lora_and_non_sd_files_are_refused(self):
        lora = os.path.join(self.dir, "a-lora.safetensors")
        save_file({"lora_unet_mid_block_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 1280, 1, 1)}, lora)
        with self.assertRaises(WorkerError) as caught:
            load_sd1(lora)
        self.assertIn("this is a LoRA, not a base model", caught.exception.message)
        other = os.path.join(self.dir, "other.safetensors")
        save_file({"encoder.weight": torch.zeros(3)}, other)
        with self.assertRaises(WorkerError) as caught:
            load_sd1(other)
        self.assertEqual(caught.exception.code, "unsupported_model")
        self.assertIn("not a Stable Diffusion checkpoint", caught.exception.message)


class TinyModels(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="lorabuild-tiny-")
        cls.path = os.path.join(cls.dir, "tiny0.safetensors")
        cls.result = build_builtin("tiny", 0, cls.path)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def test_builtin_is_deterministic_from_the_seed(self):
        again = os.path.join(self.dir, "tiny0-again.safetensors")
        other = os.path.join(self.dir, "tiny1.safetensors")
        build_builtin("tiny", 0, again)
        build_builtin("tiny", 1, other)
        self.assertEqual(sha(self.path), sha(again))
        self.assertNotEqual(sha(self.path), sha(other))
        self.assertEqual(self.result["keys"], len(expected_keys(TINY)))

    def test_builtin_uses_the_sd1_ldm_key_pattern(self):
        report = inspect(self.path)
        self.assertEqual((report.family, report.arch, report.missing, report.unexpected), ("sd1", "tiny", [], []))
        self.assertEqual(report.metadata["lorabuild.arch"], "tiny")
        sd15_keys = set(expected_keys(SD15))
        tiny_keys = set(expected_keys(TINY))
        # same UNet and VAE names as SD1.5; the text encoder has fewer layers of the same names
        self.assertEqual({k for k in tiny_keys if not k.startswith("cond_stage")}, {k for k in sd15_keys if not k.startswith("cond_stage")})
        self.assertTrue({k for k in tiny_keys if k.startswith("cond_stage")} <= sd15_keys)

    def test_toy_has_the_sd1_ldm_key_pattern_and_is_not_built(self):
        sd15_keys = set(expected_keys(SD15))
        toy_keys = set(expected_keys(TOY))
        self.assertEqual({k for k in toy_keys if not k.startswith("cond_stage")}, {k for k in sd15_keys if not k.startswith("cond_stage")})
        self.assertTrue({k for k in toy_keys if k.startswith("cond_stage")} <= sd15_keys)
        # every builtin reads CLIP ids
        self.assertEqual(TOY.text.vocab_size, SD15.text.vocab_size)
        self.assertEqual(TINY.text.vocab_size, SD15.text.vocab_size)
        with self.assertRaises(WorkerError) as caught:
            build_builtin("toy", 0, os.path.join(self.dir, "toy.safetensors"))
        self.assertEqual(caught.exception.code, "bad_request")
        self.assertIn("ships pretrained", caught.exception.message)

    def test_loaded_tiny_model_runs_every_part(self):
        sd = load_sd1(self.path)
        self.assertEqual(sd.arch, "tiny")
        ids = torch.full((2, 77), 49407, dtype=torch.long)  # CLIP EOS padding
        ids[:, 0] = 49406
        ids[1, 1:4] = torch.tensor(list(b"cat"))
        with torch.no_grad():
            ctx = sd.encode_text(ids)
            ctx_skip = sd.encode_text(ids, clip_skip=2)
            self.assertEqual(tuple(ctx.shape), (2, 77, 64))
            self.assertFalse(torch.equal(ctx[0], ctx[1]), "different captions give different contexts")
            self.assertFalse(torch.equal(ctx, ctx_skip))
            pixels = torch.rand(1, 3, 64, 64) * 2 - 1
            latents = sd.encode_images(pixels)
            self.assertEqual(tuple(latents.shape), (1, 4, 8, 8))
            self.assertGreater(latents.std().item(), 0.3, "tiny latents are scaled like SD's (std ~1)")
            eps = sd.unet(latents.expand(2, -1, -1, -1), torch.tensor([1, 999]), ctx)
            self.assertEqual(tuple(eps.shape), (2, 4, 8, 8))
            self.assertTrue(torch.isfinite(eps).all())
            images = sd.decode_latents(latents)
            self.assertEqual(tuple(images.shape), (1, 3, 64, 64))
            self.assertGreaterEqual(images.min().item(), 0.0)
            self.assertLessEqual(images.max().item(), 1.0)
        self.assertAlmostEqual(sd.alphas_cumprod[0].item(), 1 - 0.00085, places=6)
        self.assertAlmostEqual(sd.alphas_cumprod[-1].item(), 0.0047, places=4)
        self.assertFalse(any(p.requires_grad for p in sd.unet_model.parameters()))

    def test_half_precision_files_load_to_the_same_weights(self):
        tensors = load_file(self.path)
        for dtype, name in ((torch.float16, "fp16"), (torch.bfloat16, "bf16")):
            path = os.path.join(self.dir, f"tiny-{name}.safetensors")
            save_file({k: v.to(dtype) for k, v in tensors.items()}, path, {"lorabuild.arch": "tiny"})
            sd = load_sd1(path)
            expected = tensors["model.diffusion_model.out.2.weight"].to(dtype).float()
            self.assertTrue(torch.equal(sd.unet_model.out[2].weight, expected))
            self.assertEqual(inspect(path).dtype, {"fp16": "F16", "bf16": "BF16"}[name])

    def test_pickles_are_refused_unless_allowed(self):
        state = load_file(self.path)
        ckpt = os.path.join(self.dir, "tiny.ckpt")
        torch.save({"state_dict": state}, ckpt)
        before = sha(ckpt)
        with self.assertRaises(WorkerError) as caught:
            load_sd1(ckpt)
        self.assertEqual(caught.exception.code, "pickle_refused")
        self.assertIn("allow_pickle: true", caught.exception.hint)
        self.assertIn("safetensors", caught.exception.hint)
        sd = load_sd1(ckpt, allow_pickle=True)
        self.assertTrue(torch.equal(sd.unet_model.out[2].weight, state["model.diffusion_model.out.2.weight"]))
        # a pickle with a .safetensors name is still recognised by its bytes
        disguised = os.path.join(self.dir, "disguised.safetensors")
        shutil.copy(ckpt, disguised)
        with self.assertRaises(WorkerError) as caught:
            load_sd1(disguised)
        self.assertEqual(caught.exception.code, "pickle_refused")
        self.assertEqual(sha(ckpt), before, "the user's file is untouched")

    def test_missing_file_is_an_io_error(self):
        with self.assertRaises(WorkerError) as caught:
            load_sd1(os.path.join(self.dir, "nope.safetensors"))
        self.assertEqual(caught.exception.code, "io")
        self.assertIn("nope.safetensors", caught.exception.message)


if __name__ == "__main__":
    unittest.main()
