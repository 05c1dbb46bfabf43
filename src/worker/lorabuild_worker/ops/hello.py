"""hello {} -> versions, device and BLAS of this worker (what `lorabuild doctor` shows)."""
from __future__ import annotations

import os
import platform
import re
from typing import Any, Dict

import numpy
import torch

from .. import WORKER_VERSION

PROTOCOL_VERSION = 1


def _loaded_blas_libraries() -> list:
    """BLAS libraries actually mapped into this process (Linux), e.g. libopenblas.so.0 for Debian's torch."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        return []
    keys = ("openblas", "libmkl", "libblis", "libblas", "libcblas", "libflexiblas")
    return sorted({os.path.basename(p) for p in paths if any(k in os.path.basename(p) for k in keys)})


def blas_info() -> str:
    config = torch.__config__.show()
    found = [m.group(0) for m in (re.search(p, config) for p in (r"BLAS_INFO=([^,\s]+)", r"LAPACK_INFO=([^,\s]+)")) if m]
    loaded = _loaded_blas_libraries()
    if loaded:
        found.append("loaded: " + " ".join(loaded))
    return ", ".join(found) or "unknown"


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    cuda = torch.cuda.is_available()
    result: Dict[str, Any] = {
        "worker_version": WORKER_VERSION,
        "protocol": PROTOCOL_VERSION,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "cuda": cuda,
        "device": "cuda" if cuda else "cpu",
        "blas": blas_info(),
        "threads": torch.get_num_threads(),
        "sdpa": hasattr(torch.nn.functional, "scaled_dot_product_attention"),
    }
    if cuda:
        props = torch.cuda.get_device_properties(0)
        result.update(gpu_name=props.name, gpu_memory=int(props.total_memory), cuda_version=torch.version.cuda, bf16=torch.cuda.is_bf16_supported())
    return result
