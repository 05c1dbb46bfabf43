"""Model configurations. SD15 is Stable Diffusion 1.x as published. TINY and TOY are the same architecture
code with small widths (same block structure, so their LDM key names follow the SD1.5 pattern) that
train and render at 64 px on two CPU cores: TINY has random weights made from a seed (unit tests), TOY
ships pretrained weights (assets/toy, made by scripts/pretrain_toy.py: the demo). All three read CLIP's
BPE token ids (vocabulary 49408), so one tokenizer serves every model.
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
    TextConfig(width=64, layers=4, heads=4),
    native_resolution=64,
)

# A quarter of TINY's VAE width and half its UNet width, and a 32-wide, 2-layer text encoder: 2.2 M UNet,
# 0.3 M VAE, 1.6 M text parameters (1.58 M of them the CLIP vocabulary table), 8 MB in fp16. Norm groups
# of 4 channels at the widest level: a group of one channel (instance norm) cannot carry a flat color
# through the VAE's last norm.
TOY = SD1Config(
    "toy",
    UNetConfig(model_channels=16, channel_mult=(1, 2, 4, 4), num_heads=2, context_dim=32, norm_groups=4),
    VAEConfig(ch=8, ch_mult=(1, 2, 4, 4), norm_groups=2),
    TextConfig(width=32, layers=2, heads=2),
    native_resolution=64,
)

CONFIGS: Dict[str, SD1Config] = {"sd15": SD15, "tiny": TINY, "toy": TOY}

# DDPM noise schedule shared by SD1.x: "scaled linear" betas from 0.00085 to 0.012 over 1000 steps.
TRAIN_TIMESTEPS = 1000
BETA_START = 0.00085
BETA_END = 0.012
