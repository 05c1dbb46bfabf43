"""build_builtin { arch, seed, path } -> { path, arch, keys }: a random model, deterministic from the seed."""
from __future__ import annotations

from typing import Any, Dict

from ..checkpoint import build_builtin
from ..errors import bad_request


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    arch, seed, path = args.get("arch", "tiny"), args.get("seed", 0), args.get("path")
    if not isinstance(path, str) or not path:
        raise bad_request("build_builtin: args.path must be the absolute path of the file to write")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise bad_request(f"build_builtin: args.seed must be a non-negative integer, got {seed!r}")
    if not isinstance(arch, str):
        raise bad_request("build_builtin: args.arch must be a string such as 'tiny'")
    return build_builtin(arch, seed, path)
