"""Writes test models: an LDM single file turned into a diffusers folder (model_index.json, unet/, vae/,
text_encoder/ with their config.json, tokenizer/ when given), under the diffusers names the worker
derives (test_diffusers.py checks those names against the SD1.5 reference manifest).

    python3 diffusers_fixture.py tiny OUT_DIR [--seed N] [--shards N] [--variant fp16] [--pickle-text-encoder]
        -> OUT_DIR/ldm.safetensors (the builtin tiny model) and OUT_DIR/diffusers/ (the same weights)
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "worker"))

import torch  # noqa: E402

from lorabuild_worker.checkpoint import TEXT_PREFIX, UNET_PREFIX, VAE_PREFIX, build_builtin  # noqa: E402
from lorabuild_worker.configs import CONFIGS  # noqa: E402
from lorabuild_worker.diffusers_layout import diffusers_names  # noqa: E402
from lorabuild_worker.safetensors_io import load_file, save_file  # noqa: E402

PREFIXES = {"unet": UNET_PREFIX, "vae": VAE_PREFIX, "text_encoder": TEXT_PREFIX}
BASE = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"}


def component_tensors(ldm: dict, arch: str) -> dict:
    """component -> {diffusers name: tensor} for an LDM state dict."""
    out: dict = {c: {} for c in PREFIXES}
    for component, names in diffusers_names(CONFIGS[arch]).items():
        for ours, theirs in names.items():
            tensor = ldm[PREFIXES[component] + ours]
            if component == "vae" and ".attn_1." in ours and ours.endswith(".weight") and tensor.dim() == 4:
                tensor = tensor[:, :, 0, 0]  # diffusers' VAE attention projections are Linear
            out[component][theirs[0]] = tensor.contiguous()
    return out


def configs(arch: str) -> dict:
    cfg = CONFIGS[arch]
    channels = [cfg.unet.model_channels * m for m in cfg.unet.channel_mult]
    return {
        "model_index.json": {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"]},
        "unet/config.json": {"_class_name": "UNet2DConditionModel", "block_out_channels": channels, "cross_attention_dim": cfg.unet.context_dim, "layers_per_block": cfg.unet.num_res_blocks, "sample_size": cfg.native_resolution // 8},
        "vae/config.json": {"_class_name": "AutoencoderKL", "block_out_channels": [cfg.vae.ch * m for m in cfg.vae.ch_mult], "latent_channels": cfg.vae.z_channels, "scaling_factor": cfg.vae.scale_factor},
        "text_encoder/config.json": {"architectures": ["CLIPTextModel"], "hidden_size": cfg.text.width, "num_hidden_layers": cfg.text.layers, "vocab_size": cfg.text.vocab_size},
    }


def write_folder(ldm_path: str, out: str, arch: str, shards: int = 1, variant: str = "", pickle_text_encoder: bool = False, half: bool = False) -> None:
    ldm = load_file(ldm_path)
    suffix = f".{variant}" if variant else ""
    for rel, body in configs(arch).items():
        os.makedirs(os.path.dirname(os.path.join(out, rel)) or out, exist_ok=True)
        with open(os.path.join(out, rel), "w") as fh:
            json.dump(body, fh, indent=2)
    for component, tensors in component_tensors(ldm, arch).items():
        if half:
            tensors = {k: v.half() for k, v in tensors.items()}
        folder = os.path.join(out, component)
        base = BASE[component]
        if component == "text_encoder" and pickle_text_encoder:
            torch.save(tensors, os.path.join(folder, f"pytorch_model{suffix}.bin"))
            continue
        if component == "unet" and shards > 1:
            names = sorted(tensors)
            weight_map = {}
            for i in range(shards):
                part = names[i::shards]
                shard = f"{base}{suffix}-{i + 1:05d}-of-{shards:05d}.safetensors"
                save_file({k: tensors[k] for k in part}, os.path.join(folder, shard))
                weight_map.update({k: shard for k in part})
            index = f"{base}.safetensors.index{suffix}.json" if variant else f"{base}.safetensors.index.json"
            with open(os.path.join(folder, index), "w") as fh:
                json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, fh, indent=1)
            continue
        save_file(tensors, os.path.join(folder, f"{base}{suffix}.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("arch", choices=["tiny"])
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--variant", default="")
    parser.add_argument("--pickle-text-encoder", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    ldm = os.path.join(args.out, "ldm.safetensors")
    build_builtin(args.arch, args.seed, ldm)
    write_folder(ldm, os.path.join(args.out, "diffusers"), args.arch, args.shards, args.variant, args.pickle_text_encoder)


if __name__ == "__main__":
    main()
