#!/usr/bin/env python3
"""Pretrains lorabuild's builtin `toy` model: the worker's own SD1 code (UNet with cross-attention, KL
autoencoder, CLIP text encoder) at the TOY widths of src/worker/lorabuild_worker/configs.py, on pictures
this script draws itself: one filled shape (or, for 15 % of them, its outline) in a named color on a
plain background, 64x64, captioned like "a red circle on a white background".

    npm run build                       # the captions are tokenized by lorabuild's own CLIP tokenizer
    nice -n 5 /usr/bin/python3 scripts/pretrain_toy.py          # about an hour on two shared CPU cores

writes assets/toy/toy.safetensors (fp16, LDM key names, metadata lorabuild.arch = toy), its card
assets/toy/toy.json (the palette, shapes and their areas, the training record) and the sha256 next to
this script (scripts/pretrain_toy.sha256, `sha256sum -c` format). The run is deterministic for a given
torch build and thread count (both recorded): every random number comes from generators seeded here.

Phases: (1) the autoencoder learns latents that are, per 8x8 cell, the mean color and the spread of
luminance of the picture (the encoder by regression, the decoder by drawing the picture back: L1 +
MSE); they are then scaled so that latents x 0.18215 have unit standard deviation, as SD's do; (2) the UNet
and the text encoder learn together to predict the noise of SD1's DDPM schedule (epsilon, MSE) from the
frozen autoencoder's latents, with 10 % empty captions for classifier-free guidance and an exponential
moving average of the weights, which is what ships.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from typing import Dict, List, Tuple

# One thread for every BLAS/OpenMP pool unless the caller says otherwise (set before numpy and torch load):
# Debian's OpenBLAS-pthread otherwise spins its own threads, and on a shared machine that made the
# small matrix products here 7x slower.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src", "worker"))

from lorabuild_worker.checkpoint import TEXT_PREFIX, UNET_PREFIX, VAE_PREFIX, ddpm_alphas_cumprod, expected_keys  # noqa: E402
from lorabuild_worker.configs import TOY, TRAIN_TIMESTEPS  # noqa: E402
from lorabuild_worker.nn.clip import CLIPTextModel  # noqa: E402
from lorabuild_worker.nn.unet import ResBlock, SpatialTransformer, UNet  # noqa: E402
from lorabuild_worker.nn.vae import AutoencoderKL  # noqa: E402
from lorabuild_worker.safetensors_io import load_file, read_header, save_file  # noqa: E402

SIZE = 64
SUPERSAMPLE = 4
SEED = 20240

# name -> sRGB. Shapes and backgrounds both come from this palette (never the same color twice).
PALETTE: Dict[str, Tuple[int, int, int]] = {
    "red": (214, 39, 40),
    "orange": (247, 129, 20),
    "yellow": (245, 205, 35),
    "green": (44, 160, 44),
    "blue": (31, 90, 200),
    "purple": (128, 60, 175),
    "pink": (240, 128, 180),
    "brown": (140, 86, 45),
    "black": (25, 25, 25),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
}
# backgrounds: mostly white/black/gray, as in clip art
BACKGROUND_WEIGHTS = {name: 1.0 for name in PALETTE}
BACKGROUND_WEIGHTS.update({"white": 6.0, "black": 3.0, "gray": 2.0})
SHAPES = ["circle", "square", "triangle", "star", "heart", "house", "diamond", "cross"]
OUTLINE_SHARE = 0.15
COLOR_JITTER = 10  # +- per channel, so a color name is a small region rather than one value

# caption variants of one picture and how often each is used in training
VARIANTS = ("full", "no_background", "shape_background", "shape", "empty")
VARIANT_WEIGHTS = (0.5, 0.2, 0.1, 0.1, 0.1)


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(variant: str, shape: str, color: str, background: str, outline: bool) -> str:
    noun = f"{shape} outline" if outline else shape
    if variant == "full":
        return f"{article(color)} {color} {noun} on {article(background)} {background} background"
    if variant == "no_background":
        return f"{article(color)} {color} {noun}"
    if variant == "shape_background":
        return f"{article(noun)} {noun} on {article(background)} {background} background"
    if variant == "shape":
        return f"{article(noun)} {noun}"
    return ""


# ---------------------------------------------------------------------------------------------
# Drawing: shapes as polygons (or a circle) in a unit frame, rasterised with 4x4 supersampling.


def _polygon(shape: str) -> np.ndarray:
    """Vertices in a frame where the shape fits the unit circle, y pointing down."""
    if shape == "square":
        s = 0.72
        return np.array([[-s, -s], [s, -s], [s, s], [-s, s]])
    if shape == "diamond":
        return np.array([[0, -1.0], [0.75, 0], [0, 1.0], [-0.75, 0]])
    if shape == "triangle":
        return np.array([[0, -1.0], [0.866, 0.5], [-0.866, 0.5]]) + [0, 0.15]
    if shape == "star":
        angles = -math.pi / 2 + np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1) + [0, 0.08]
    if shape == "heart":
        t = np.linspace(0, 2 * math.pi, 32, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return np.stack([x, y + 2.5], 1) / 16.5
    if shape == "house":
        return np.array([[-0.7, 0.8], [-0.7, -0.1], [0, -0.85], [0.7, -0.1], [0.7, 0.8]])
    if shape == "cross":
        a, b = 0.28, 0.85
        return np.array([[-a, -b], [a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b], [-a, b], [-a, a], [-b, a], [-b, -a], [-a, -a]])
    raise ValueError(shape)


POLYGONS = {s: _polygon(s) for s in SHAPES if s != "circle"}
_N = SIZE * SUPERSAMPLE
_GRID_2D = (np.stack(np.mgrid[0:_N, 0:_N][::-1], -1) + 0.5) / _N  # [y, x] -> (x, y) of every subsample in [0, 1]


def _inside_polygon(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    inside = np.zeros(len(points), dtype=bool)
    x, y = points[:, 0], points[:, 1]
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0)):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < xc)
    return inside


def _distance_to_polygon(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    best = np.full(len(points), np.inf)
    for (ax, ay), (bx, by) in zip(poly, np.roll(poly, -1, axis=0)):
        dx, dy = bx - ax, by - ay
        rx, ry = points[:, 0] - ax, points[:, 1] - ay
        t = np.clip((rx * dx + ry * dy) / (dx * dx + dy * dy), 0, 1)
        np.minimum(best, (rx - t * dx) ** 2 + (ry - t * dy) ** 2, out=best)
    return np.sqrt(best)


def coverage(shape: str, cx: float, cy: float, radius: float, outline_px: float) -> np.ndarray:
    """[SIZE, SIZE] fraction of each pixel covered by the shape (filled, or an outline outline_px wide)."""
    # only the pixels of the shape's bounding box are tested
    reach = radius * 1.1 + outline_px / SIZE
    lo = [int(np.clip(np.floor((c - reach) * SIZE), 0, SIZE)) for c in (cx, cy)]
    hi = [int(np.clip(np.ceil((c + reach) * SIZE), 0, SIZE)) for c in (cx, cy)]
    sub = _GRID_2D[lo[1] * SUPERSAMPLE : hi[1] * SUPERSAMPLE, lo[0] * SUPERSAMPLE : hi[0] * SUPERSAMPLE]
    h, w = sub.shape[:2]
    local = (sub.reshape(-1, 2) - [cx, cy]) / radius  # unit frame
    if shape == "circle":
        r = np.linalg.norm(local, axis=1)
        mask = np.abs(r - 1.0) * radius * SIZE <= outline_px / 2 if outline_px else r <= 1.0
    elif outline_px:
        mask = _distance_to_polygon(local, POLYGONS[shape]) * radius * SIZE <= outline_px / 2
    else:
        mask = _inside_polygon(local, POLYGONS[shape])
    out = np.zeros((SIZE, SIZE))
    out[lo[1] : hi[1], lo[0] : hi[0]] = mask.reshape(h // SUPERSAMPLE, SUPERSAMPLE, w // SUPERSAMPLE, SUPERSAMPLE).mean(axis=(1, 3))
    return out


def draw_pool(n: int, rng: np.random.RandomState) -> Tuple[np.ndarray, List[dict]]:
    """n pictures (uint8 [n, SIZE, SIZE, 3]) and what each shows."""
    names = list(PALETTE)
    bg_p = np.array([BACKGROUND_WEIGHTS[c] for c in names])
    bg_p /= bg_p.sum()
    images = np.zeros((n, SIZE, SIZE, 3), dtype=np.uint8)
    items = []
    for i in range(n):
        shape = SHAPES[rng.randint(len(SHAPES))]
        background = names[rng.choice(len(names), p=bg_p)]
        color = names[rng.randint(len(names))]
        while color == background:
            color = names[rng.randint(len(names))]
        outline = bool(rng.rand() < OUTLINE_SHARE)
        radius = rng.uniform(0.24, 0.38)
        cx, cy = 0.5 + rng.uniform(-0.08, 0.08, size=2)
        width = rng.uniform(2.5, 4.5) if outline else 0.0
        cov = coverage(shape, cx, cy, radius, width)[..., None]
        fg = np.clip(np.array(PALETTE[color]) + rng.randint(-COLOR_JITTER, COLOR_JITTER + 1, 3), 0, 255)
        bg = np.clip(np.array(PALETTE[background]) + rng.randint(-COLOR_JITTER, COLOR_JITTER + 1, 3), 0, 255)
        images[i] = np.round(bg * (1 - cov) + fg * cov).astype(np.uint8)
        items.append({"shape": shape, "color": color, "background": background, "outline": outline, "area": float(cov.mean())})
    return images, items


# ---------------------------------------------------------------------------------------------
# Tokens: lorabuild's own tokenizer (the shipped CLIP BPE vocabulary), so training sees exactly the ids
# that validation, `lorabuild tokenize` and rendering give the same text.


def tokenize(captions: List[str]) -> Dict[str, List[int]]:
    cli = os.path.join(ROOT, "bin", "lorabuild.js")
    if not os.path.exists(os.path.join(ROOT, "dist", "cli", "main.js")):
        sys.exit("pretrain_toy: dist/ is missing; run `npm run build` first (the captions are tokenized by lorabuild)")
    text = "".join(f"{c}\n" for c in captions)
    out = subprocess.run(["node", cli, "tokenize", "--json", "-"], input=text, capture_output=True, text=True, check=True, cwd=ROOT)
    ids: Dict[str, List[int]] = {}
    for line in out.stdout.splitlines():
        row = json.loads(line)
        padded = row["ids"] + [row["ids"][-1]] * (TOY.text.max_length - len(row["ids"]))  # EOS padding
        ids[row["text"]] = padded[: TOY.text.max_length]
    missing = [c for c in captions if c not in ids]
    if missing:
        sys.exit(f"pretrain_toy: the tokenizer returned no ids for {missing[:3]}")
    return ids


# ---------------------------------------------------------------------------------------------
# Training


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))) + peak * 0.02


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def progress(phase: str, step: int, total: int, loss: float, started: float) -> None:
    rate = (step + 1) / max(1e-9, time.time() - started)
    eta = (total - step - 1) / max(1e-9, rate)
    log(f"{phase} {step + 1}/{total} loss {loss:.4f} {rate:.2f} it/s ETA {eta / 60:.1f} min")


def to_pixels(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def latent_target(x: torch.Tensor) -> torch.Tensor:
    """What the toy's latents are: per 8x8 cell the mean color (3 channels) and the spread of luminance
    (1 channel, 0 on flat cells, high across an edge or a stroke)."""
    lum = x.mean(1, keepdim=True)
    spread = (F.avg_pool2d(lum**2, 8) - F.avg_pool2d(lum, 8) ** 2).clamp(min=0).sqrt()
    return torch.cat([F.avg_pool2d(x, 8), spread * 4 - 1], 1)


def train_vae(vae: AutoencoderKL, pool: np.ndarray, steps: int, batch: int, gen: torch.Generator) -> float:
    """The encoder learns to give latent_target(x) (MSE), the decoder to draw x back from it (L1 + MSE,
    from a slightly noisy target so that it tolerates what the encoder and the UNet give it). Two short
    supervised problems instead of one deep joint one: on two CPU cores this converges in minutes where
    a jointly trained KL autoencoder of this depth took hours to learn the shapes' colors."""
    opt = torch.optim.AdamW(vae.parameters(), lr=2e-3, betas=(0.9, 0.99), weight_decay=0.0)
    z = TOY.vae.z_channels
    with torch.no_grad():  # a deterministic posterior (std ~0.02): the toy's latents are not sampled
        vae.quant_conv.weight[z:].zero_()
        vae.quant_conv.bias[z:].fill_(-8.0)
    started, ema_loss = time.time(), None
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, 2e-3, 100)
        idx = torch.randint(len(pool), (batch,), generator=gen)
        x = to_pixels(pool[idx.numpy()])
        if bool(torch.rand((), generator=gen) < 0.5):
            x = x.flip(3)
        target = latent_target(x)
        encoded = vae.encode_mean(x)
        rec = vae.decode(target + 0.05 * torch.randn(target.shape, generator=gen))
        loss = F.mse_loss(encoded, target) + (rec - x).abs().mean() + (rec - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_loss = loss.item() if ema_loss is None else 0.98 * ema_loss + 0.02 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            progress("autoencoder", step, steps, ema_loss, started)
    return float(ema_loss)


@torch.no_grad()
def encode_pool(vae: AutoencoderKL, pool: np.ndarray) -> torch.Tensor:
    return torch.cat([vae.encode_mean(to_pixels(pool[i : i + 256])) for i in range(0, len(pool), 256)])


@torch.no_grad()
def calibrate_latents(vae: AutoencoderKL, latents: torch.Tensor) -> float:
    """Scale the encoder's output so that latents x 0.18215 have std 1 (SD's convention), and the decoder's
    input back, so that decode(encode(x)) is unchanged. Returns the gain."""
    gain = 1.0 / (latents.std().item() * TOY.vae.scale_factor)
    z = TOY.vae.z_channels
    vae.quant_conv.weight[:z] *= gain
    vae.quant_conv.bias[:z] *= gain
    vae.quant_conv.bias[z:] += 2 * math.log(gain)  # log-variance of the scaled posterior
    vae.post_quant_conv.weight /= gain
    return gain


MIN_SNR_GAMMA = 5.0


@torch.no_grad()
def ldm_init(unet: UNet) -> None:
    """LDM's initialisation: the last layer of every residual branch, of every transformer and of the
    UNet starts at zero, so that the untrained UNet is a short identity-like path."""
    for m in unet.modules():
        if isinstance(m, ResBlock):
            m.out_layers[3].weight.zero_()
            m.out_layers[3].bias.zero_()
        if isinstance(m, SpatialTransformer):
            m.proj_out.weight.zero_()
            m.proj_out.bias.zero_()
    unet.out[2].weight.zero_()
    unet.out[2].bias.zero_()


TOKEN_TABLE = "text_model.embeddings.token_embedding.weight"


def train_diffusion(unet: UNet, text: CLIPTextModel, latents: torch.Tensor, caption_ids: torch.Tensor, steps: int, batch: int, gen: torch.Generator) -> Tuple[float, Dict[str, torch.Tensor]]:
    """Returns the final loss and the EMA weights (LDM names). Only the rows of the token table that the
    captions use are trained (a compact copy, written back at the end): the other 49,000 rows keep their
    initial values, as they would with sparse gradients, and the optimizer does not touch them."""
    full_table = text.text_model.embeddings.token_embedding
    used = torch.unique(caption_ids)
    remap = torch.full((full_table.num_embeddings,), -1, dtype=torch.long)
    remap[used] = torch.arange(len(used))
    compact = nn.Embedding(len(used), full_table.embedding_dim)
    with torch.no_grad():
        compact.weight.copy_(full_table.weight[used])
    text.text_model.embeddings.token_embedding = compact
    caption_ids = remap[caption_ids]

    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.99), weight_decay=1e-2, foreach=True)
    modules = {UNET_PREFIX: unet, TEXT_PREFIX: text}
    live = [v for m in modules.values() for v in m.state_dict().values()]
    ema_list = [v.detach().clone() for v in live]
    alphas = ddpm_alphas_cumprod()
    variant_p = torch.tensor(VARIANT_WEIGHTS)
    started, ema_loss = time.time(), None
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, 1e-3, 200)
        idx = torch.randint(len(latents), (batch,), generator=gen)
        variant = torch.multinomial(variant_p, batch, replacement=True, generator=gen)
        ids = caption_ids[idx, variant]
        x0 = latents[idx] * TOY.vae.scale_factor
        t = torch.randint(TRAIN_TIMESTEPS, (batch,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        a = alphas[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        snr = a / (1 - a)
        weight = snr.clamp(max=MIN_SNR_GAMMA) / snr  # min-SNR-5 weighting: converges faster
        loss = (weight * (unet(xt, t, text(ids)) - noise).pow(2)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_mul_(ema_list, decay)
            torch._foreach_add_(ema_list, [v.detach() for v in live], alpha=1 - decay)
        ema_loss = loss.item() if ema_loss is None else 0.98 * ema_loss + 0.02 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            progress("diffusion", step, steps, ema_loss, started)
    names = [prefix + k for prefix, m in modules.items() for k in m.state_dict()]
    ema = dict(zip(names, ema_list))
    table = full_table.weight.detach().clone()
    table[used] = ema[TEXT_PREFIX + TOKEN_TABLE]
    ema[TEXT_PREFIX + TOKEN_TABLE] = table
    text.text_model.embeddings.token_embedding = full_table
    return float(ema_loss), ema


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def area_stats(items: List[dict]) -> Dict[str, Dict[str, float]]:
    stats = {}
    for shape in SHAPES:
        areas = np.array([it["area"] for it in items if it["shape"] == shape and not it["outline"]])
        stats[shape] = {"min": round(float(areas.min()), 4), "mean": round(float(areas.mean()), 4), "max": round(float(areas.max()), 4)}
    return stats


def recipe(ns: argparse.Namespace) -> dict:
    """What determines the weights (stored in the safetensors metadata, so that a rebuild with the same
    torch build and thread count gives the same file, byte for byte)."""
    return {
        "seed": SEED,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "threads": ns.threads,
        "pool": ns.pool,
        "autoencoder": {"steps": ns.vae_steps, "batch": ns.vae_batch},
        "diffusion": {"steps": ns.steps, "batch": ns.batch},
    }


def write_outputs(tensors: Dict[str, torch.Tensor], out: str, ns: argparse.Namespace, measured: dict, items: List[dict], captions: List[List[str]]) -> None:
    """The weights (fp16, LDM names, the recipe in their metadata), and unless --no-record the card
    (recipe + what was measured: losses, minutes) and the sha256 next to this script."""
    want = expected_keys(TOY)
    assert set(tensors) == set(want) and all(tuple(tensors[k].shape) == s for k, s in want.items()), "key layout differs from TOY"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    metadata = {"lorabuild.arch": "toy", "modelspec.architecture": "stable-diffusion-v1", "lorabuild.pretraining": json.dumps(recipe(ns), sort_keys=True)}
    save_file({k: v.to(torch.float16) for k, v in tensors.items()}, out, metadata)
    digest = sha256_file(out)
    log(f"wrote {out}: {os.path.getsize(out) / 1e6:.1f} MB, sha256 {digest}")
    if ns.no_record:
        return
    pretraining = recipe(ns)
    for phase in ("autoencoder", "diffusion"):
        pretraining[phase].update(measured.pop(phase, {}))
    pretraining.update(measured)
    card = {
        "file": os.path.relpath(out, ROOT),
        "sha256": digest,
        "size": SIZE,
        "palette": {k: list(v) for k, v in PALETTE.items()},
        "shapes": SHAPES,
        "filled_area": area_stats(items),
        "outline_share": OUTLINE_SHARE,
        "caption_examples": captions[0][:4],
        "pretraining": pretraining,
    }
    card_path = os.path.join(os.path.dirname(out), "toy.json")
    with open(card_path, "w") as fh:
        json.dump(card, fh, indent=2)
        fh.write("\n")
    with open(os.path.join(ROOT, "scripts", "pretrain_toy.sha256"), "w") as fh:
        fh.write(f"{digest}  {os.path.relpath(out, ROOT)}\n")
    log(f"wrote {card_path} and scripts/pretrain_toy.sha256")


def parse_args(argv: List[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "assets", "toy", "toy.safetensors"))
    ap.add_argument("--pool", type=int, default=8192, help="pictures drawn for training")
    ap.add_argument("--vae-steps", type=int, default=2000)
    ap.add_argument("--vae-batch", type=int, default=8)
    ap.add_argument("--save-autoencoder", help="after phase 1, save the autoencoder here and stop (to run the phases apart)")
    ap.add_argument("--autoencoder", help="skip phase 1: load the autoencoder that --save-autoencoder saved with the same settings (the result is the same as one run)")
    ap.add_argument("--steps", type=int, default=1500, help="diffusion steps")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: on a shared machine, spinning OpenMP threads waste more than they gain)")
    ap.add_argument("--no-record", action="store_true", help="write only --out (for trial runs)")
    return ap.parse_args(argv)


def draw_training_set(ns: argparse.Namespace) -> Tuple[np.ndarray, List[dict], List[List[str]], torch.Tensor]:
    pool, items = draw_pool(ns.pool, np.random.RandomState(SEED))
    captions = [[caption(v, it["shape"], it["color"], it["background"], it["outline"]) for v in VARIANTS] for it in items]
    vocab = tokenize(sorted({c for row in captions for c in row}))
    caption_ids = torch.tensor([[vocab[c] for c in row] for row in captions])
    return pool, items, captions, caption_ids


def main() -> None:
    ns = parse_args()
    torch.set_num_threads(ns.threads)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    log(f"torch {torch.__version__}, {ns.threads} threads; drawing {ns.pool} pictures")
    t0 = time.time()
    pool, items, captions, caption_ids = draw_training_set(ns)
    t_draw = time.time() - t0
    log(f"drew and tokenized in {t_draw:.0f} s ({len({c for row in captions for c in row})} distinct captions)")

    vae, unet, text = AutoencoderKL(TOY.vae), UNet(TOY.unet), CLIPTextModel(TOY.text)
    ldm_init(unet)
    with torch.no_grad():  # CLIP's initialisation of the token table: unseen tokens stay small and random
        text.text_model.embeddings.token_embedding.weight.normal_(0, 0.02, generator=gen)
        text.text_model.embeddings.position_embedding.weight.normal_(0, 0.01, generator=gen)
    # phase 1 draws from a copy of the generator, so that phase 2 sees the same numbers whether phase 1
    # ran in this process or was loaded with --autoencoder
    phase1_gen = torch.Generator()
    phase1_gen.set_state(gen.get_state())
    t0 = time.time()
    if ns.autoencoder:
        vae.load_state_dict(load_file(ns.autoencoder))
        phase1 = json.loads(read_header(ns.autoencoder)[1].get("lorabuild.autoencoder", "{}"))
        phase1["loaded_from_sha256"] = sha256_file(ns.autoencoder)
    else:
        vae_loss = train_vae(vae, pool, ns.vae_steps, ns.vae_batch, phase1_gen)
        phase1 = {"final_loss": round(vae_loss, 5), "minutes": round((time.time() - t0) / 60, 2)}
    if ns.save_autoencoder:
        settings = {"seed": SEED, "pool": ns.pool, "steps": ns.vae_steps, "batch": ns.vae_batch, "torch": torch.__version__, "threads": ns.threads}
        save_file({k: v.detach() for k, v in vae.state_dict().items()}, ns.save_autoencoder, {"lorabuild.autoencoder": json.dumps({**phase1, **settings}, sort_keys=True)})
        log(f"saved the autoencoder to {ns.save_autoencoder}")
        return
    vae.eval().requires_grad_(False)
    latents = encode_pool(vae, pool)
    gain = calibrate_latents(vae, latents)
    latents = latents * gain  # what encode_pool gives now (the mean rows of quant_conv scaled by gain)
    log(f"autoencoder: loss {phase1.get('final_loss')}, latent gain {gain:.3f}, scaled latent std {latents.std().item() * TOY.vae.scale_factor:.3f}, {(time.time() - t0) / 60:.1f} min")

    t0 = time.time()
    diffusion_loss, ema = train_diffusion(unet, text, latents, caption_ids, ns.steps, ns.batch, gen)
    t_diffusion = time.time() - t0
    log(f"diffusion: loss {diffusion_loss:.4f}, {t_diffusion / 60:.1f} min")

    tensors = dict(ema)
    tensors.update({VAE_PREFIX + k: v.detach() for k, v in vae.state_dict().items()})
    measured = {
        "autoencoder": {**{k: v for k, v in phase1.items() if k in ("final_loss", "minutes", "loaded_from_sha256")}, "latent_gain": round(gain, 5)},
        "diffusion": {"final_loss": round(diffusion_loss, 5), "minutes": round(t_diffusion / 60, 2)},
        "drawing_minutes": round(t_draw / 60, 2),
    }
    write_outputs(tensors, ns.out, ns, measured, items, captions)


if __name__ == "__main__":
    main()
