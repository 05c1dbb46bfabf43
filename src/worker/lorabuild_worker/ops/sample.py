"""sample { model, arch?, allow_pickle?, clip_skip?, max_batch?, lora_files?: { ID: { path, modules, skip_keys } },
cells: [{ cond_ids, uncond_ids, seed, width, height, sampler, steps, cfg, loras: [{ file: ID, strength_model, strength_clip }],
out, parameters }] } -> { cells: [{ out }] }

Renders each cell to a PNG whose tEXt chunk "parameters" holds the A1111-style generation text the
caller composed. The model loads once; cells that share the LoRA stack and sampling settings run
as one batch (at most ``max_batch``; default 4 on CUDA, 1 on CPU so that cells are bit-reproducible).
A cell's LoRAs are applied in order by patching weights as ComfyUI's Load LoRA does (lora_patch.py);
consecutive batches with the same stack keep the patched weights, and the base weights are back when
the op returns. A cell with no LoRAs (the "without" arm) renders the unpatched model. Text is encoded
after patching (strength_clip patches the text encoder).

Fairness: a cell's initial latent depends only on its seed and size (``samplers.CellNoise``: CPU
generators, then moved to the device), whatever batch it lands in.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .. import samplers as S
from ..errors import WorkerError, bad_request
from ..lora_patch import LoraFiles, WeightPatcher
from ..models import default_device, get_sd1

LATENT_FACTOR = 8
MAX_SIDE = 4096


class Cell:
    def __init__(self, index: int, raw: Dict[str, Any], context_length: int, vocab: int, size_multiple: int, lora_files: LoraFiles):
        where = f"sample: cells[{index}]"
        self.index = index
        self.cond_ids = _ids(raw.get("cond_ids"), f"{where}.cond_ids", context_length, vocab)
        self.uncond_ids = _ids(raw.get("uncond_ids"), f"{where}.uncond_ids", context_length, vocab)
        self.seed = _int(raw.get("seed"), f"{where}.seed", 0, 2**64 - 1)
        self.width = _int(raw.get("width"), f"{where}.width", LATENT_FACTOR, MAX_SIDE)
        self.height = _int(raw.get("height"), f"{where}.height", LATENT_FACTOR, MAX_SIDE)
        if self.width % size_multiple or self.height % size_multiple:
            raise bad_request(
                f"{where}: width and height must be multiples of {size_multiple} for this model, got {self.width}x{self.height}",
                f"the VAE divides by 8 and the UNet halves the latent {(size_multiple // LATENT_FACTOR).bit_length() - 1} times; pick e.g. {max(size_multiple, round(self.width / size_multiple) * size_multiple)}",
            )
        self.sampler = raw.get("sampler")
        if self.sampler not in S.SAMPLERS:
            raise bad_request(f"{where}.sampler must be one of {', '.join(S.SAMPLERS)}, got {self.sampler!r}")
        self.steps = _int(raw.get("steps"), f"{where}.steps", 1, 1000)
        cfg = raw.get("cfg")
        if isinstance(cfg, bool) or not isinstance(cfg, (int, float)) or not (0 <= cfg <= 100):
            raise bad_request(f"{where}.cfg must be a number in 0..100, got {cfg!r}")
        self.cfg = float(cfg)
        self.loras = _stack(raw.get("loras", []), f"{where}.loras", lora_files)
        self.out = raw.get("out")
        if not isinstance(self.out, str) or not os.path.isabs(self.out):
            raise bad_request(f"{where}.out must be an absolute path")
        self.parameters = raw.get("parameters", "")
        if not isinstance(self.parameters, str):
            raise bad_request(f"{where}.parameters must be a string")

    def batch_key(self) -> tuple:
        return (self.loras, self.sampler, self.steps, self.cfg, self.width, self.height)


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (lo <= value <= hi):
        raise bad_request(f"{where} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def _stack(value: Any, where: str, lora_files: LoraFiles) -> Tuple[Tuple[str, float, float], ...]:
    """The cell's LoRAs in order as (file id, strength_model, strength_clip); entries with both strengths 0 are dropped."""
    if not isinstance(value, list):
        raise bad_request(f"{where} must be a list of {{file, strength_model, strength_clip}}")
    stack = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or entry.get("file") not in lora_files:
            raise bad_request(f"{where}[{i}].file must name an entry of lora_files")
        strengths = [entry.get(k, 1.0) for k in ("strength_model", "strength_clip")]
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or v != v for v in strengths):
            raise bad_request(f"{where}[{i}]: strength_model and strength_clip must be numbers")
        if strengths[0] != 0 or strengths[1] != 0:
            stack.append((entry["file"], float(strengths[0]), float(strengths[1])))
    return tuple(stack)


def _ids(value: Any, where: str, length: int, vocab: int) -> List[int]:
    if not isinstance(value, list) or len(value) != length or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < vocab for i in value):
        raise bad_request(f"{where} must be {length} token ids in 0..{vocab - 1}")
    return value


def group_cells(cells: List[Cell], max_batch: int) -> List[List[Cell]]:
    """Cells with the same LoRA stack and settings, in order of first appearance, split to max_batch."""
    groups: Dict[tuple, List[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.batch_key(), []).append(cell)
    batches = []
    for members in groups.values():
        for start in range(0, len(members), max_batch):
            batches.append(members[start : start + max_batch])
    return batches


def png_pixels_and_text(image: torch.Tensor, parameters: str) -> Tuple[np.ndarray, PngInfo]:
    """[3, H, W] in [0, 1] -> HxWx3 uint8 (rounded) and the tEXt chunk with the parameters."""
    pixels = (image.float().cpu().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    info = PngInfo()
    if parameters:
        info.add_text("parameters", parameters)
    return pixels, info


def write_png(image: torch.Tensor, parameters: str, out: str) -> None:
    pixels, info = png_pixels_and_text(image, parameters)
    folder = os.path.dirname(out)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(out) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            Image.fromarray(pixels, "RGB").save(f, format="PNG", pnginfo=info)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def render_batch(sd: Any, batch: List[Cell], clip_skip: int, on_step) -> torch.Tensor:
    """Samples one batch (same LoRA stack, already patched in, and settings); returns decoded images [B, 3, H, W] in [0, 1]."""
    first = batch[0]
    cond = sd.encode_text(torch.tensor([c.cond_ids for c in batch], dtype=torch.long), clip_skip).to(sd.dtype)
    uncond = sd.encode_text(torch.tensor([c.uncond_ids for c in batch], dtype=torch.long), clip_skip).to(sd.dtype)
    schedule = S.Schedule(sd.alphas_cumprod.detach().cpu())
    denoiser = S.ModelDenoiser(sd.unet, schedule, S.Guidance(cond=cond, uncond=uncond, scale=first.cfg))
    shape = (sd.config.unet.in_channels, first.height // LATENT_FACTOR, first.width // LATENT_FACTOR)
    noise = S.CellNoise([c.seed for c in batch], shape, device=sd.device, dtype=sd.dtype)
    latents = S.sample(first.sampler, denoiser, noise, schedule, first.steps, callback=on_step)
    return sd.decode_latents(latents)


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    model = args.get("model")
    if not isinstance(model, str):
        raise bad_request("sample: args.model must be a checkpoint path")
    raw_cells = args.get("cells")
    if not isinstance(raw_cells, list) or not all(isinstance(c, dict) for c in raw_cells):
        raise bad_request("sample: args.cells must be a list of cell objects")
    clip_skip = _int(args.get("clip_skip", 1), "sample: args.clip_skip", 1, 11)
    device = default_device()
    # CPU renders one cell at a time: a cell's bytes then never depend on which cells shared its batch
    # (BLAS results differ slightly by batch size), so cached cells are reproducible; CUDA batches for speed
    max_batch = _int(args.get("max_batch", 4 if device.type == "cuda" else 1), "sample: args.max_batch", 1, 64)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    sd = get_sd1(model, device, dtype, bool(args.get("allow_pickle", False)), args.get("arch"))
    text = sd.config.text
    size_multiple = LATENT_FACTOR * 2 ** (len(sd.config.unet.channel_mult) - 1)
    lora_files = LoraFiles(sd, args.get("lora_files", {}))
    cells = [Cell(i, c, text.max_length, text.vocab_size, size_multiple, lora_files) for i, c in enumerate(raw_cells)]
    for file_id in dict.fromkeys(f for c in cells for f, _, _ in c.loras):
        lora_files.get(file_id)  # every file is read and checked against the model before the first cell renders

    total = sum(c.steps for c in cells)
    done_steps = 0
    written: Dict[int, str] = {}
    patcher = WeightPatcher(sd)
    applied: Optional[tuple] = None
    try:
        with torch.no_grad():
            for batch in group_cells(cells, max_batch):
                base = done_steps

                def on_step(step: int, _n: int, base: int = base, size: int = len(batch)) -> None:
                    if ctx.cancelled():
                        raise WorkerError("cancelled", f"sample: cancelled after {len(written)} of {len(cells)} cells")
                    ctx.progress(base + step * size, total, message=f"{len(written) + size}/{len(cells)} cells")

                if batch[0].loras != applied:
                    patcher.apply(lora_files.stack(batch[0].loras))
                    applied = batch[0].loras
                images = render_batch(sd, batch, clip_skip, on_step)
                for cell, image in zip(batch, images):
                    write_png(image, cell.parameters, cell.out)
                    written[cell.index] = cell.out
                done_steps += batch[0].steps * len(batch)
    finally:
        patcher.restore()  # the cached model must leave as it came
    return {"cells": [{"out": written[c.index]} for c in cells]}
