"""A one-entry cache of the last loaded model, so consecutive ops (encode, train, sample) on the same
checkpoint load it once per worker process. Callers must leave the model as they found it (remove
LoRA hooks, eval mode)."""
from __future__ import annotations

import os
from typing import Optional, Tuple

import torch

from .checkpoint import SD1, load_sd1
from .diffusers_layout import folder_stamp

_cached: Optional[Tuple[tuple, SD1]] = None


def get_sd1(path: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, allow_pickle: bool = False, arch: Optional[str] = None) -> SD1:
    global _cached
    try:
        st = os.stat(path)
        contents = folder_stamp(path) if os.path.isdir(path) else (st.st_size, st.st_mtime_ns)
        key: tuple = (os.path.abspath(path), contents, str(torch.device(device)), dtype, allow_pickle)
    except OSError:
        key = (path,)
    if _cached is not None and _cached[0] == key and (arch is None or _cached[1].arch == arch):
        return _cached[1]
    _cached = None  # free the old model before loading the next
    sd = load_sd1(path, device, dtype, allow_pickle, arch)
    _cached = (key, sd)
    return sd


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
