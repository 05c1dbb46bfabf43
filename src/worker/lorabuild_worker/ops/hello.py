"""hello {} -> versions, device and BLAS of this worker (what `lorabuild doctor` shows)."""
from __future__ import annotations

import platform
import re
from typing import Any, Dict

import numpy
import torch

from .. import WORKER_VERSION

PROTOCOL_VERSION = 1


def blas_info() -> str:
    config = torch.__config__.show()
    found = []
    for pattern in (r"BLAS_INFO=([^,\s]+)", r"LAPACK_INFO=([^,\s]+)"):
        match = re.search(pattern, config)
        if match:
            found.append(match.group(0))
    if "MKL" in config and "mkl" not in " ".join(found).lower():
        found.append("MKL")
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
