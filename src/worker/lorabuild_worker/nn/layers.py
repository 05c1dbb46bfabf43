"""Layer factories that honour a build device, so a full SD1.5 can be built on the ``meta`` device
(no memory, no init cost) to check a checkpoint's keys before any weight is read.

    with build_device("meta"):
        unet = UNet(config)      # every parameter is a meta tensor
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Optional

from torch import nn

_device: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("lorabuild_build_device", default=None)


@contextlib.contextmanager
def build_device(device: Optional[str]) -> Iterator[None]:
    token = _device.set(device)
    try:
        yield
    finally:
        _device.reset(token)


def _kw() -> dict:
    device = _device.get()
    return {} if device is None else {"device": device}


def linear(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    return nn.Linear(in_features, out_features, bias=bias, **_kw())


def conv2d(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, **_kw())


def group_norm(channels: int, groups: int, eps: float = 1e-5) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=eps, affine=True, **_kw())


def layer_norm(dim: int, eps: float = 1e-5) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=eps, **_kw())


def embedding(num: int, dim: int) -> nn.Embedding:
    return nn.Embedding(num, dim, **_kw())
