"""train: see lorabuild_worker.train.run_training and src/worker/protocol.ts."""
from __future__ import annotations

from typing import Any, Dict

from ..train import run_training


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    return run_training(args, ctx)
