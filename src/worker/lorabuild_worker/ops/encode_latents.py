"""encode_latents { model, arch?, resolution, items: [{ image, out }], allow_pickle? } -> { items: [{ out }] }

Each ``out`` gets the VAE posterior of the image and of its mirror image, the cache random-flip training
picks from: "latent" and "latent_flipped" ([4, r/8, r/8] float32, the posterior mean already multiplied
by the VAE scale 0.18215) and "logvar" and "logvar_flipped" (its log-variance, unscaled), so training can
use the mean (``latents: mean``) or draw a posterior sample per step (``latents: sample``)."""
from __future__ import annotations

from typing import Any, Dict

import torch

from ..errors import WorkerError, bad_request
from ..images import load_square
from ..models import default_device, get_sd1
from ..safetensors_io import save_file


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    model, resolution, items = args.get("model"), args.get("resolution"), args.get("items")
    if not isinstance(model, str):
        raise bad_request("encode_latents: args.model must be a checkpoint path")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 8 or resolution % 8:
        raise bad_request(f"encode_latents: args.resolution must be a positive multiple of 8, got {resolution!r}")
    if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("image"), str) and isinstance(i.get("out"), str) for i in items):
        raise bad_request("encode_latents: args.items must be a list of {image, out} paths")
    device = default_device()
    sd = get_sd1(model, device, torch.float32, bool(args.get("allow_pickle", False)), args.get("arch"))
    done = []
    with torch.no_grad():
        for n, item in enumerate(items):
            if ctx.cancelled():
                raise WorkerError("cancelled", f"encode_latents: cancelled after {n} of {len(items)} items")
            pixels = load_square(item["image"], resolution)
            mean, logvar = sd.encode_posterior(torch.stack([pixels, torch.flip(pixels, dims=[2])]))
            mean, logvar = mean.float().cpu(), logvar.float().cpu()
            tensors = {"latent": mean[0], "latent_flipped": mean[1], "logvar": logvar[0], "logvar_flipped": logvar[1]}
            save_file({k: v.contiguous() for k, v in tensors.items()}, item["out"])
            done.append({"out": item["out"]})
            ctx.progress(n + 1, len(items))
    return {"items": done}
