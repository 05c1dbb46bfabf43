"""diffusers folders: the derived names against the SD1.5 reference manifest, header-faithful SD1.5
folders, and the same tiny weights loaded from LDM and from diffusers giving identical outputs
(single file, shards, fp16 variant, pickles refused unless allowed, hostile indexes refused)."""
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "worker"))
sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402
import yaml  # noqa: E402

torch.set_num_threads(1)

from diffusers_fixture import write_folder  # noqa: E402
from lorabuild_worker.checkpoint import build_builtin, check_loadable, expected_keys, inspect, load_sd1  # noqa: E402
from lorabuild_worker.checkpoint import TEXT_PREFIX, UNET_PREFIX, VAE_PREFIX  # noqa: E402
from lorabuild_worker.configs import SD15  # noqa: E402
from lorabuild_worker.diffusers_layout import diffusers_names, is_diffusers_folder  # noqa: E402
from lorabuild_worker.errors import WorkerError  # noqa: E402
from lorabuild_worker.models import get_sd1  # noqa: E402
from test_checkpoint import write_sparse  # noqa: E402

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "reference", "sd15-key-manifest", "sd1-kohya.yaml")
# the reference names components by these prefixes (te = the text encoder)
REFERENCE_PREFIX = {"unet": "unet.", "vae": "vae.", "text_encoder": "te."}
LDM_PREFIX = {"unet": UNET_PREFIX, "vae": VAE_PREFIX, "text_encoder": TEXT_PREFIX}


def reference_keys():
    with open(REFERENCE) as f:
        components = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["components"]
    return {k: (tuple(v["shape"]), v["dtype"]) for entries in components.values() for k, v in entries.items()}


class SD15Names(unittest.TestCase):
    def test_derived_names_and_shapes_are_the_reference_diffusers_layout(self):
        reference = reference_keys()
        self.assertEqual(len(reference), 1130)
        shapes = expected_keys(SD15)
        produced = {}
        for component, names in diffusers_names(SD15).items():
            for ours, theirs in names.items():
                shape = shapes[LDM_PREFIX[component] + ours]
                if component == "vae" and ".attn_1." in ours and ours.endswith(".weight"):
                    shape = shape[:2]  # Linear in diffusers, 1x1 conv in LDM
                produced[REFERENCE_PREFIX[component] + theirs[0]] = shape
        self.assertEqual(set(produced), set(reference))
        for key, (shape, _dtype) in reference.items():
            self.assertEqual(produced[key], shape, key)

    def test_same_shaped_tensors_pair_as_diffusers_names_them(self):
        # Names and shapes alone cannot tell a permutation of same-shaped tensors (q/k/v, the resnets
        # of a block, the norms of a resnet or a transformer block, reversed decoder levels): these
        # pairs are diffusers' own correspondence (its LDM->diffusers conversion), written out here
        # as an oracle independent of the derivation (the tiny fixtures are written with the derived
        # names, so they cannot catch it).
        pairs = {
            "vae": {
                "decoder.mid.attn_1.q.weight": "decoder.mid_block.attentions.0.to_q.weight",
                "decoder.mid.attn_1.k.weight": "decoder.mid_block.attentions.0.to_k.weight",
                "decoder.mid.attn_1.v.bias": "decoder.mid_block.attentions.0.to_v.bias",
                "encoder.mid.attn_1.proj_out.weight": "encoder.mid_block.attentions.0.to_out.0.weight",
                "decoder.mid.block_2.norm1.weight": "decoder.mid_block.resnets.1.norm1.weight",
                "decoder.up.0.block.0.conv1.weight": "decoder.up_blocks.3.resnets.0.conv1.weight",
                "decoder.up.3.block.2.norm2.bias": "decoder.up_blocks.0.resnets.2.norm2.bias",
                "decoder.up.3.upsample.conv.weight": "decoder.up_blocks.0.upsamplers.0.conv.weight",
                "encoder.down.0.block.1.conv2.weight": "encoder.down_blocks.0.resnets.1.conv2.weight",
                "encoder.down.1.block.0.nin_shortcut.weight": "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
                "encoder.down.2.downsample.conv.weight": "encoder.down_blocks.2.downsamplers.0.conv.weight",
                "encoder.norm_out.weight": "encoder.conv_norm_out.weight",
            },
            "unet": {
                "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight": "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
                "input_blocks.1.1.transformer_blocks.0.attn1.to_k.weight": "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k.weight",
                "input_blocks.1.1.transformer_blocks.0.norm3.weight": "down_blocks.0.attentions.0.transformer_blocks.0.norm3.weight",
                "input_blocks.1.0.in_layers.0.weight": "down_blocks.0.resnets.0.norm1.weight",
                "input_blocks.1.0.emb_layers.1.weight": "down_blocks.0.resnets.0.time_emb_proj.weight",
                "input_blocks.2.0.in_layers.2.weight": "down_blocks.0.resnets.1.conv1.weight",
                "input_blocks.2.0.out_layers.3.weight": "down_blocks.0.resnets.1.conv2.weight",
                "input_blocks.3.0.op.weight": "down_blocks.0.downsamplers.0.conv.weight",
                "input_blocks.4.0.skip_connection.weight": "down_blocks.1.resnets.0.conv_shortcut.weight",
                "middle_block.0.out_layers.0.weight": "mid_block.resnets.0.norm2.weight",
                "middle_block.1.transformer_blocks.0.attn2.to_k.weight": "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                "middle_block.2.in_layers.0.weight": "mid_block.resnets.1.norm1.weight",
                "output_blocks.2.1.conv.weight": "up_blocks.0.upsamplers.0.conv.weight",
                "output_blocks.4.0.out_layers.3.weight": "up_blocks.1.resnets.1.conv2.weight",
                "output_blocks.4.1.transformer_blocks.0.attn2.to_v.weight": "up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_v.weight",
                "output_blocks.5.2.conv.weight": "up_blocks.1.upsamplers.0.conv.weight",
                "output_blocks.11.1.proj_out.weight": "up_blocks.3.attentions.2.proj_out.weight",
                "time_embed.2.weight": "time_embedding.linear_2.weight",
                "out.0.weight": "conv_norm_out.weight",
                "out.2.weight": "conv_out.weight",
            },
            "text_encoder": {
                "text_model.encoder.layers.0.self_attn.q_proj.weight": "text_model.encoder.layers.0.self_attn.q_proj.weight",
                "text_model.encoder.layers.11.self_attn.k_proj.bias": "text_model.encoder.layers.11.self_attn.k_proj.bias",
                "text_model.encoder.layers.5.layer_norm2.weight": "text_model.encoder.layers.5.layer_norm2.weight",
            },
        }
        derived = diffusers_names(SD15)
        for component, expected in pairs.items():
            for ours, theirs in expected.items():
                self.assertIn(ours, derived[component], ours)
                self.assertEqual(derived[component][ours][0], theirs, ours)

    def test_header_faithful_sd15_fp16_folder_inspects_clean(self):
        reference = reference_keys()
        tmp = tempfile.mkdtemp(prefix="lorabuild-diffusers-sd15-")
        try:
            files = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"}
            for component, base in files.items():
                prefix = REFERENCE_PREFIX[component]
                entries = {k[len(prefix):]: (list(shape), dtype) for k, (shape, dtype) in reference.items() if k.startswith(prefix)}
                os.makedirs(os.path.join(tmp, component))
                write_sparse(os.path.join(tmp, component, f"{base}.fp16.safetensors"), entries, ("F16", 2))
            with open(os.path.join(tmp, "model_index.json"), "w") as fh:
                fh.write("{}")
            self.assertTrue(is_diffusers_folder(tmp))
            report = inspect(tmp)
            self.assertEqual((report.family, report.arch, report.dtype), ("sd1", "sd15", "F16"))
            self.assertEqual((report.missing, report.unexpected, report.mismatched), ([], [], []))
            check_loadable(tmp, report)
        finally:
            shutil.rmtree(tmp)


class TinyLdmVersusDiffusers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="lorabuild-diffusers-tiny-")
        cls.ldm = os.path.join(cls.dir, "tiny.safetensors")
        build_builtin("tiny", 3, cls.ldm)
        cls.reference = load_sd1(cls.ldm)
        gen = torch.Generator().manual_seed(0)
        cls.latents = torch.randn(2, 4, 8, 8, generator=gen)
        cls.pixels = torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
        cls.ids = torch.randint(0, 258, (2, 77), generator=gen)
        cls.t = torch.tensor([10, 900])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def folder(self, name, **options):
        out = os.path.join(self.dir, name)
        if not os.path.isdir(out):
            write_folder(self.ldm, out, "tiny", **options)
        return out

    def outputs(self, sd):
        with torch.no_grad():
            context = sd.encode_text(self.ids)
            return {
                "text": context,
                "text_skip2": sd.encode_text(self.ids, clip_skip=2),
                "unet": sd.unet(self.latents, self.t, context),
                "encode": sd.encode_images(self.pixels),
                "decode": sd.decode_latents(self.latents),
            }

    def assert_identical(self, sd):
        self.assertEqual(sd.arch, "tiny")
        want = self.outputs(self.reference)
        got = self.outputs(sd)
        for key in want:
            self.assertTrue(torch.equal(want[key], got[key]), f"{key} differs")

    def test_one_file_per_component(self):
        path = self.folder("single")
        for component in ("unet", "vae", "text_encoder"):
            self.assertTrue(os.path.isfile(os.path.join(path, component, "config.json")))
        self.assert_identical(load_sd1(path))

    def test_sharded_unet_with_an_index(self):
        path = self.folder("sharded", shards=3)
        self.assertEqual(len([f for f in os.listdir(os.path.join(path, "unet")) if f.endswith(".safetensors")]), 3)
        self.assert_identical(load_sd1(path))

    def test_fp16_variant_files(self):
        path = self.folder("fp16", variant="fp16", half=True)
        self.assertTrue(os.path.isfile(os.path.join(path, "unet", "diffusion_pytorch_model.fp16.safetensors")))
        sd = load_sd1(path)
        ref = self.reference.unet_model.state_dict()
        for key, value in sd.unet_model.state_dict().items():
            self.assertTrue(torch.equal(value, ref[key].half().float()), key)

    def test_the_worker_model_cache_sees_a_replaced_weight_file(self):
        path = self.folder("cache")
        first = get_sd1(path)
        self.assertIs(get_sd1(path), first)
        unet = os.path.join(path, "unet", "diffusion_pytorch_model.safetensors")
        os.utime(unet, ns=(os.stat(unet).st_atime_ns, os.stat(unet).st_mtime_ns + 1_000_000))
        self.assertIsNot(get_sd1(path), first)

    def test_pickled_weights_are_refused_unless_allowed(self):
        path = self.folder("pickle", pickle_text_encoder=True)
        with self.assertRaises(WorkerError) as caught:
            load_sd1(path)
        self.assertEqual(caught.exception.code, "pickle_refused")
        self.assertIn(os.path.join("text_encoder", "pytorch_model.bin"), caught.exception.message)
        self.assert_identical(load_sd1(path, allow_pickle=True))

    def test_incomplete_and_hostile_folders_are_refused_with_the_file_named(self):
        broken = os.path.join(self.dir, "no-vae")
        shutil.copytree(self.folder("single"), broken)
        shutil.rmtree(os.path.join(broken, "vae"))
        with self.assertRaises(WorkerError) as caught:
            load_sd1(broken)
        self.assertIn(os.path.join(broken, "vae"), caught.exception.message)

        hostile = os.path.join(self.dir, "hostile")
        shutil.copytree(self.folder("sharded", shards=3), hostile)
        index = os.path.join(hostile, "unet", "diffusion_pytorch_model.safetensors.index.json")
        with open(index) as fh:
            data = json.load(fh)
        first = next(iter(data["weight_map"]))
        data["weight_map"][first] = "../../tiny.safetensors"
        with open(index, "w") as fh:
            json.dump(data, fh)
        with self.assertRaises(WorkerError) as caught:
            load_sd1(hostile)
        self.assertIn("is not a file name in the same folder", caught.exception.message)

    def test_sdxl_folder_is_refused(self):
        from lorabuild_worker.safetensors_io import save_file

        folder = os.path.join(self.dir, "sdxl")
        shutil.copytree(self.folder("single"), folder)
        unet = os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors")
        from lorabuild_worker.safetensors_io import load_file

        tensors = load_file(unet)
        tensors["add_embedding.linear_1.weight"] = torch.zeros(4, 4)
        save_file(tensors, unet)
        with self.assertRaises(WorkerError) as caught:
            load_sd1(folder)
        self.assertIn("this is an SDXL checkpoint", caught.exception.message)


if __name__ == "__main__":
    unittest.main()
