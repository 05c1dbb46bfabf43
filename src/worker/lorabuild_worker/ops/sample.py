"""sample { model, arch?, allow_pickle?, clip_skip?, max_batch?, empty_ids?, lora_files?: { ID: { path, modules, skip_keys } },
cells: [{ cond_ids, cond_weights?, uncond_ids, uncond_weights?, seed, width, height, sampler, scheduler?, steps, cfg,
denoise?, init_image?, loras: [{ file: ID, strength_model, strength_clip }], out, parameters }] } -> { cells: [{ out }] }

Renders each cell as ComfyUI's KSampler would (see samplers/) and writes a PNG whose tEXt chunk
"parameters" holds the generation text the caller composed. A prompt is one or more chunks of
context-length ids (``cond_ids``: one list, or a list of chunks) with optional per-id weights; any
weight other than 1 needs ``empty_ids`` (the empty prompt's ids) to weight against, as ComfyUI does.
``denoise`` < 1 keeps the tail of the schedule; ``init_image`` (a file) is encoded by the VAE and
re-noised instead of starting from noise alone (img2img).

The model loads once; cells that share the LoRA stack and sampling settings run as one batch (at
most ``max_batch``; default 4 on CUDA, 1 on CPU so that cells are bit-reproducible). A cell's LoRAs
are applied in order by patching weights as ComfyUI's Load LoRA does (lora_patch.py); consecutive
batches with the same stack keep the patched weights, and the base weights are back when the op
returns. A cell with no LoRAs (the "without" arm) renders the unpatched model. Text is encoded after
patching (strength_clip patches the text encoder).

Fairness: a cell's initial latent and ancestral noise depend only on its seed and size
(``samplers.CellNoise``: CPU generators, then moved to the device), whatever batch it lands in.
"""
from __future__ import annotations

import math
import os
import tempfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .. import samplers as S
from ..errors import WorkerError, bad_request
from ..images import load_cover
from ..lora_patch import LoraFiles, WeightPatcher
from ..models import default_device, get_sd1
from ..prompt import encode_prompt, has_weights

LATENT_FACTOR = 8
MAX_SIDE = 4096
MAX_CHUNKS = 32


class Cell:
    def __init__(self, index: int, raw: Dict[str, Any], context_length: int, vocab: int, size_multiple: int, lora_files: LoraFiles):
        where = f"sample: cells[{index}]"
        self.index = index
        self.cond_ids = _chunks(raw.get("cond_ids"), f"{where}.cond_ids", context_length, vocab)
        self.cond_weights = _weights(raw.get("cond_weights"), f"{where}.cond_weights", self.cond_ids)
        self.uncond_ids = _chunks(raw.get("uncond_ids"), f"{where}.uncond_ids", context_length, vocab)
        self.uncond_weights = _weights(raw.get("uncond_weights"), f"{where}.uncond_weights", self.uncond_ids)
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
        self.scheduler = raw.get("scheduler", "normal")
        if self.scheduler not in S.SCHEDULERS:
            raise bad_request(f"{where}.scheduler must be one of {', '.join(S.SCHEDULERS)}, got {self.scheduler!r}")
        self.steps = _int(raw.get("steps"), f"{where}.steps", 1, 1000)
        self.cfg = _number(raw.get("cfg"), f"{where}.cfg", 0, 100)
        self.denoise = _number(raw.get("denoise", 1.0), f"{where}.denoise", 0, 1)
        if self.denoise == 0:
            raise bad_request(f"{where}.denoise must be above 0 (0 leaves the latent as it is)")
        self.init_image = raw.get("init_image")
        if self.init_image is not None and (not isinstance(self.init_image, str) or not os.path.isfile(self.init_image)):
            raise WorkerError("io", f"{where}.init_image is not a file: {self.init_image!r}")
        self.loras = _stack(raw.get("loras", []), f"{where}.loras", lora_files)
        self.out = raw.get("out")
        if not isinstance(self.out, str) or not os.path.isabs(self.out):
            raise bad_request(f"{where}.out must be an absolute path")
        self.parameters = raw.get("parameters", "")
        if not isinstance(self.parameters, str):
            raise bad_request(f"{where}.parameters must be a string")

    def batch_key(self) -> tuple:
        return (self.loras, self.sampler, self.scheduler, self.steps, self.cfg, self.denoise, self.width, self.height,
                len(self.cond_ids), len(self.uncond_ids))

    def sampler_steps(self) -> int:
        return S.step_count(self.sampler, self.scheduler, self.steps, self.denoise)


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not (lo <= value <= hi):
        raise bad_request(f"{where} must be an integer in {lo}..{hi}, got {value!r}")
    return value


def _number(value: Any, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (lo <= value <= hi):
        raise bad_request(f"{where} must be a number in {lo:g}..{hi:g}, got {value!r}")
    return float(value)


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


def _chunks(value: Any, where: str, length: int, vocab: int) -> List[List[int]]:
    """One chunk of `length` ids, or a list of 1..MAX_CHUNKS such chunks (a prompt over 75 tokens)."""
    if isinstance(value, list) and value and all(isinstance(c, list) for c in value):
        if len(value) > MAX_CHUNKS:
            raise bad_request(f"{where} has {len(value)} chunks; at most {MAX_CHUNKS} ({MAX_CHUNKS * (length - 2)} tokens)")
        return [_ids(c, f"{where}[{i}]", length, vocab) for i, c in enumerate(value)]
    return [_ids(value, where, length, vocab)]


def _weights(value: Any, where: str, chunks: List[List[int]]) -> Optional[List[List[float]]]:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != len(chunks) or not all(
        isinstance(w, list) and len(w) == len(c) and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in w)
        for w, c in zip(value, chunks)
    ):
        raise bad_request(f"{where} must hold one finite number per token id, chunk by chunk")
    return [[float(x) for x in w] for w in value]


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


def _conditioning(sd: Any, batch: List[Cell], clip_skip: int, empty_ids: Optional[List[int]], uncond: bool) -> torch.Tensor:
    """[B, 77 * chunks, width]: each cell's prompt encoded on its own, as CLIPTextEncode would."""
    encoded = [encode_prompt(sd, c.uncond_ids if uncond else c.cond_ids, c.uncond_weights if uncond else c.cond_weights, empty_ids, clip_skip) for c in batch]
    return torch.cat(encoded).to(sd.device)


def _init_latents(sd: Any, batch: List[Cell]) -> Optional[torch.Tensor]:
    if batch[0].init_image is None:
        return None
    pixels = torch.stack([load_cover(c.init_image, c.width, c.height) for c in batch])
    return sd.encode_images(pixels).float()


def render_batch(sd: Any, batch: List[Cell], clip_skip: int, on_step, empty_ids: Optional[List[int]] = None) -> torch.Tensor:
    """Samples one batch (same LoRA stack, already patched in, and settings); returns decoded images [B, 3, H, W] in [0, 1]."""
    first = batch[0]
    cond = _conditioning(sd, batch, clip_skip, empty_ids, uncond=False)
    uncond = _conditioning(sd, batch, clip_skip, empty_ids, uncond=True)
    schedule = S.DiscreteSchedule()
    denoiser = S.ModelDenoiser(sd.unet, schedule, S.Guidance(cond=cond, uncond=uncond, scale=first.cfg), model_dtype=sd.dtype)
    shape = (sd.config.unet.in_channels, first.height // LATENT_FACTOR, first.width // LATENT_FACTOR)
    noise = S.CellNoise([c.seed for c in batch], shape, device=sd.device)
    latents = S.sample(first.sampler, first.scheduler, first.steps, denoiser, noise, schedule,
                       denoise=first.denoise, latent=_init_latents(sd, batch), progress=on_step)
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
    empty_ids = args.get("empty_ids")
    if empty_ids is not None or any(has_weights(w) for c in cells for w in (c.cond_weights, c.uncond_weights)):
        empty_ids = _ids(empty_ids, "sample: args.empty_ids (the empty prompt, needed by weighted prompts)", text.max_length, text.vocab_size)

    total = sum(c.sampler_steps() for c in cells)
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
                images = render_batch(sd, batch, clip_skip, on_step, empty_ids)
                for cell, image in zip(batch, images):
                    write_png(image, cell.parameters, cell.out)
                    written[cell.index] = cell.out
                done_steps += batch[0].sampler_steps() * len(batch)
    finally:
        patcher.restore()  # the cached model must leave as it came
    return {"cells": [{"out": written[c.index]} for c in cells]}
