"""Image loading for the VAE: decode (any PIL format), orient by EXIF, flatten transparency onto white,
scale to cover the target size and center-crop, as the lab's training does (also for img2img init images)."""
from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import WorkerError

MAX_PIXELS = 128 * 1024 * 1024  # refuse decompression bombs; far above any training image


def load_square(path: str, resolution: int) -> torch.Tensor:
    """-> float tensor [3, resolution, resolution] in [-1, 1]."""
    return load_cover(path, resolution, resolution)


def load_cover(path: str, width: int, height: int) -> torch.Tensor:
    """-> float tensor [3, height, width] in [-1, 1]: scaled (bicubic) to cover width x height, center-cropped."""
    if not os.path.isfile(path):
        raise WorkerError("io", f"image not found: {path}")
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise WorkerError("io", f"{path}: {im.width}x{im.height} pixels is too large to be a training image")
            im = ImageOps.exif_transpose(im)
            im.load()
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                flat.alpha_composite(rgba)
                im = flat
            im = im.convert("RGB")
    except WorkerError:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise WorkerError("io", f"{path}: cannot decode image ({exc})", "remove or replace the file; `lorabuild check` lists undecodable images") from exc
    scale = max(width / im.width, height / im.height)
    size = (max(width, round(im.width * scale)), max(height, round(im.height * scale)))
    im = im.resize(size, Image.BICUBIC)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    im = im.crop((left, top, left + width, top + height))
    pixels = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float()
    return pixels / 127.5 - 1.0
