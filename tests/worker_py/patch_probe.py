"""Patches the builtin tiny model with a LoRA stack exactly as the sample op does, and writes the weights
of the targeted modules before and after, so a test can check them against closed forms it works out
itself (tests/lora-formats.test.ts). Not a unittest module.

    python3 patch_probe.py REQUEST.json OUT.safetensors
    REQUEST = { "model": path (built if missing), "lora_files": { id: spec },
                "cases": [{ "name", "stack": [[id, strength_model, strength_clip]], "targets": [kohya name] }] }
    OUT holds "<case>/<target>.before" and ".after" per case; metadata "restored" says whether every
    weight was back to the bit after restore().
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "worker"))

import torch  # noqa: E402

torch.set_num_threads(1)

from lorabuild_worker.checkpoint import build_builtin, load_sd1  # noqa: E402
from lorabuild_worker.lora import _module_index  # noqa: E402
from lorabuild_worker.lora_patch import LoraFiles, WeightPatcher  # noqa: E402
from lorabuild_worker.safetensors_io import save_file  # noqa: E402


def main() -> None:
    with open(sys.argv[1]) as f:
        request = json.load(f)
    if not os.path.exists(request["model"]):
        build_builtin("tiny", 0, request["model"])
    sd = load_sd1(request["model"])
    index = _module_index(sd)
    files = LoraFiles(sd, request["lora_files"])
    patcher = WeightPatcher(sd)
    originals = {k: m.weight.detach().clone() for k, m in index.items()}
    out = {}
    for case in request["cases"]:
        patcher.apply(files.stack([tuple(entry) for entry in case["stack"]]))
        for t in case["targets"]:
            out[f"{case['name']}/{t}.before"] = originals[t].contiguous()
            out[f"{case['name']}/{t}.after"] = index[t].weight.detach().clone().contiguous()
        patcher.restore()
    restored = all(torch.equal(m.weight, originals[k]) for k, m in index.items())
    save_file(out, sys.argv[2], {"restored": str(restored)})


if __name__ == "__main__":
    main()
