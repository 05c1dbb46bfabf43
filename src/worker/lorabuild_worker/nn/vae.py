"""The SD1.x KL autoencoder with LDM module names (first_stage_model.* in a single-file checkpoint):
encoder (conv_in, down.N.block.M, down.N.downsample, mid.block_1/attn_1/block_2, norm_out, conv_out),
quant_conv, post_quant_conv, decoder (conv_in, mid, up.N.block.M, up.N.upsample, norm_out, conv_out).
"""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..configs import VAEConfig
from .attention import attention
from .layers import conv2d, group_norm


class VAEResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, groups: int):
        super().__init__()
        self.norm1 = group_norm(in_ch, groups, eps=1e-6)
        self.conv1 = conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = group_norm(out_ch, groups, eps=1e-6)
        self.conv2 = conv2d(out_ch, out_ch, 3, padding=1)
        self.nin_shortcut = conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.nin_shortcut(x) + h


class VAEAttention(nn.Module):
    """Single-head self-attention over pixels with 1x1 conv projections."""

    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm = group_norm(ch, groups, eps=1e-6)
        self.q = conv2d(ch, ch, 1)
        self.k = conv2d(ch, ch, 1)
        self.v = conv2d(ch, ch, 1)
        self.proj_out = conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (t.reshape(b, c, h * w).transpose(1, 2) for t in (self.q(y), self.k(y), self.v(y)))
        out = attention(q, k, v, heads=1).transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(out)


class EncoderDownsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = conv2d(ch, ch, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # LDM pads right/bottom only


class DecoderUpsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """One resolution level: ``block`` (ModuleList) then an optional ``downsample``/``upsample``."""

    def __init__(self, blocks: List[nn.Module]):
        super().__init__()
        self.block = nn.ModuleList(blocks)


class MidBlock(nn.Module):
    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.block_1 = VAEResBlock(ch, ch, groups)
        self.attn_1 = VAEAttention(ch, groups)
        self.block_2 = VAEResBlock(ch, ch, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        g = cfg.norm_groups
        self.conv_in = conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        self.down = nn.ModuleList()
        ch = cfg.ch
        for i, mult in enumerate(cfg.ch_mult):
            blocks: List[nn.Module] = []
            for _ in range(cfg.num_res_blocks):
                blocks.append(VAEResBlock(ch, cfg.ch * mult, g))
                ch = cfg.ch * mult
            level = Level(blocks)
            if i != len(cfg.ch_mult) - 1:
                level.downsample = EncoderDownsample(ch)
            self.down.append(level)
        self.mid = MidBlock(ch, g)
        self.norm_out = group_norm(ch, g, eps=1e-6)
        self.conv_out = conv2d(ch, 2 * cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                h = block(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        g = cfg.norm_groups
        ch = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = conv2d(cfg.z_channels, ch, 3, padding=1)
        self.mid = MidBlock(ch, g)
        levels: List[Level] = []
        for i in reversed(range(len(cfg.ch_mult))):
            blocks: List[nn.Module] = []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(VAEResBlock(ch, cfg.ch * cfg.ch_mult[i], g))
                ch = cfg.ch * cfg.ch_mult[i]
            level = Level(blocks)
            if i != 0:
                level.upsample = DecoderUpsample(ch)
            levels.insert(0, level)  # up.0 is the finest level, as in LDM
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(ch, g, eps=1e-6)
        self.conv_out = conv2d(ch, cfg.in_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            for block in level.block:
                h = block(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = conv2d(2 * cfg.z_channels, 2 * cfg.z_channels, 1)
        self.post_quant_conv = conv2d(cfg.z_channels, cfg.z_channels, 1)

    def encode_moments(self, pixels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """pixels in [-1, 1] -> the posterior's mean and log-variance (unscaled latents), the
        log-variance clamped to [-30, 20] as LDM's DiagonalGaussianDistribution does."""
        moments = self.quant_conv(self.encoder(pixels))
        mean, logvar = moments[:, : self.cfg.z_channels], moments[:, self.cfg.z_channels :]
        return mean, torch.clamp(logvar, -30.0, 20.0)

    def encode_mean(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels in [-1, 1] -> the posterior mean (unscaled latents)."""
        return self.encode_moments(pixels)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """unscaled latents -> pixels in about [-1, 1]."""
        return self.decoder(self.post_quant_conv(z))
