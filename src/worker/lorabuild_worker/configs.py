"""Model configurations. SD15 is Stable Diffusion 1.x as published; TINY is the same architecture code
with small widths (same block structure, so its LDM key names follow the SD1.5 pattern) that trains at
64 px in seconds on two CPU cores: demos, tests and CI.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: Tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_levels: Tuple[int, ...] = (0, 1, 2)  # levels (by channel_mult index) with a SpatialTransformer
    num_heads: int = 8
    context_dim: int = 768
    norm_groups: int = 32


@dataclass(frozen=True)
class VAEConfig:
    in_channels: int = 3
    z_channels: int = 4
    ch: int = 128
    ch_mult: Tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    norm_groups: int = 32
    scale_factor: float = 0.18215


@dataclass(frozen=True)
class TextConfig:
    vocab_size: int = 49408
    max_length: int = 77
    width: int = 768
    layers: int = 12
    heads: int = 12


@dataclass(frozen=True)
class SD1Config:
    name: str
    unet: UNetConfig
    vae: VAEConfig
    text: TextConfig
    # resolution a builtin model is meant to train and render at
    native_resolution: int


SD15 = SD1Config("sd15", UNetConfig(), VAEConfig(), TextConfig(), native_resolution=512)

TINY = SD1Config(
    "tiny",
    UNetConfig(model_channels=32, channel_mult=(1, 2, 4, 4), num_heads=4, context_dim=64),
    VAEConfig(ch=32, ch_mult=(1, 2, 4, 4)),
    # byte-level tokenizer: ids 0..255 are UTF-8 bytes, 256 = BOS, 257 = EOS (also padding)
    TextConfig(vocab_size=258, width=64, layers=4, heads=4),
    native_resolution=64,
)

CONFIGS: Dict[str, SD1Config] = {"sd15": SD15, "tiny": TINY}

# DDPM noise schedule shared by SD1.x: "scaled linear" betas from 0.00085 to 0.012 over 1000 steps.
TRAIN_TIMESTEPS = 1000
BETA_START = 0.00085
BETA_END = 0.012
