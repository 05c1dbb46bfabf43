"""``python -m lorabuild_worker.launch ...``: torch's own launcher (``torch.distributed.run``), with one
fix: under Python 3.11, torch < 2.0 (Debian's 1.13 among them) parses ``--redirects 0`` / ``--tee 0``
to None, because 3.11 no longer iterates zero-valued IntFlag members, and every launch fails in
``to_map``. The fix parses those values with ``Std(int(...))``; newer torch is left alone."""
from __future__ import annotations

import re
import sys

from torch.distributed.elastic.multiprocessing import api


def _from_str(vm: str):
    if re.match(api._VALUE_REGEX, vm):
        return api.Std(int(vm))
    if re.match(api._MAPPING_REGEX, vm):
        return {int(i): api.Std(int(v)) for i, v in (m.split(":") for m in vm.split(","))}
    raise ValueError(f"{vm} does not match: <{api._VALUE_REGEX}> or <{api._MAPPING_REGEX}>")


if api.Std.from_str("0") is None:
    api.Std.from_str = staticmethod(_from_str)  # type: ignore[method-assign]

if __name__ == "__main__":
    from torch.distributed.run import main

    sys.exit(main())
