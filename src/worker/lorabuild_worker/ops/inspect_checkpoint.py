"""inspect_checkpoint { path, allow_pickle? } -> { family, arch, dtype, missing, unexpected } for a
loadable SD1 file; anything lorabuild would refuse to load (SDXL, SD2, LoRA, non-SD, incomplete,
pickle without allow_pickle) ends as an error event with the same message the loader gives."""
from __future__ import annotations

from typing import Any, Dict

from ..checkpoint import check_loadable, inspect
from ..errors import bad_request


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    path = args.get("path")
    if not isinstance(path, str) or not path:
        raise bad_request("inspect_checkpoint: args.path must be an absolute file path")
    report = inspect(path, bool(args.get("allow_pickle", False)))
    check_loadable(path, report)
    return report.to_json()
