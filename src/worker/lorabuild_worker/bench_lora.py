"""Cost of applying a LoRA for rendering: ``python -m lorabuild_worker.bench_lora write|apply ...``
(driven by bench/lora-apply.js, which plans the keys with the TypeScript side in between).

    write --arch sd15 --rank 32 --out FILE     a LoCon over every UNet Linear/Conv2d (3x3 convs with 3x3
                                               downs), fp16 like downloaded files, alpha = rank / 2
    apply --arch sd15 --plan PLAN.json [--size 512] [--unet-steps 2]
                                               loads the file as the sample op does, patches the weights,
                                               restores them, and times one guided UNet step (batch 2:
                                               cond + uncond) at SIZE px for comparison; prints one JSON line

Weights are random (a model of the architecture built in memory); nothing but the LoRA file is read.
Peak memory: VmHWM of the process, reset (clear_refs) before the LoRA is read, so the figure is the
model plus what loading and patching add.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from .bench import _random_init  # noqa: E402
from .checkpoint import empty_sd1  # noqa: E402
from .configs import CONFIGS  # noqa: E402
from .lora import _module_index  # noqa: E402
from .lora_patch import LoraFile, WeightPatcher  # noqa: E402
from .safetensors_io import save_file  # noqa: E402


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def write(arch: str, rank: int, out: str) -> dict:
    sd = empty_sd1(arch)  # meta: names and shapes only
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for name, module in _module_index(sd).items():
        if not name.startswith("lora_unet_"):
            continue
        w = module.weight
        r = min(rank, w.shape[0], w.shape[1])
        down_shape = (r,) + tuple(w.shape[1:])
        up_shape = (w.shape[0], r) + ((1, 1) if w.dim() == 4 else ())
        tensors[f"{name}.lora_down.weight"] = (torch.randn(down_shape, generator=g) * 0.01).half()
        tensors[f"{name}.lora_up.weight"] = (torch.randn(up_shape, generator=g) * 0.01).half()
        tensors[f"{name}.alpha"] = torch.tensor(float(rank) / 2).half()
    save_file(tensors, out, {"ss_network_module": "lycoris.kohya", "ss_network_dim": str(rank), "ss_network_args": json.dumps({"conv_dim": rank, "algo": "locon"})})
    return {"file": out, "modules": len(tensors) // 3, "bytes": os.path.getsize(out)}


def apply(arch: str, plan_path: str, size: int, unet_steps: int) -> dict:
    torch.manual_seed(0)
    t0 = time.perf_counter()
    sd = empty_sd1(arch, "cpu", torch.float32)
    _random_init(sd)
    build_s = time.perf_counter() - t0
    with open(plan_path) as f:
        spec = json.load(f)
    model_kib = _status_kib("VmRSS")
    reset = _reset_peak()

    t0 = time.perf_counter()
    lora = LoraFile.load(sd, spec)
    load_s = time.perf_counter() - t0
    patcher = WeightPatcher(sd)
    t0 = time.perf_counter()
    with torch.no_grad():
        patched = patcher.apply([(lora, 1.0, 1.0)])
    apply_s = time.perf_counter() - t0
    peak_kib = _status_kib("VmHWM")
    t0 = time.perf_counter()
    patcher.restore()
    restore_s = time.perf_counter() - t0

    latent = size // 8
    c = sd.config
    x = torch.randn(2, c.unet.in_channels, latent, latent)
    ctx = torch.randn(2, c.text.max_length, c.unet.context_dim)
    t = torch.tensor([500, 500])
    times = []
    with torch.no_grad():
        for _ in range(unet_steps):
            t0 = time.perf_counter()
            sd.unet(x, t, ctx)
            times.append(time.perf_counter() - t0)
    step_s = min(times[1:] or times)
    return {
        "arch": arch,
        "size": size,
        "modules_patched": patched,
        "threads": torch.get_num_threads(),
        "build_model_s": round(build_s, 2),
        "load_and_check_s": round(load_s, 3),
        "patch_s": round(apply_s, 3),
        "restore_s": round(restore_s, 3),
        "unet_step_s": round(step_s, 3),
        "patch_per_unet_step": round(apply_s / step_s, 3),
        "rss_model_mib": round(model_kib / 1024),
        "peak_mib": round(peak_kib / 1024) if reset else None,
        "added_by_lora_mib": round((peak_kib - model_kib) / 1024) if reset else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--arch", choices=sorted(CONFIGS), default="sd15")
    w.add_argument("--rank", type=int, default=32)
    w.add_argument("--out", required=True)
    a = sub.add_parser("apply")
    a.add_argument("--arch", choices=sorted(CONFIGS), default="sd15")
    a.add_argument("--plan", required=True)
    a.add_argument("--size", type=int, default=512)
    a.add_argument("--unet-steps", type=int, default=2)
    args = ap.parse_args()
    if args.cmd == "write":
        result = write(args.arch, args.rank, args.out)
    else:
        result = apply(args.arch, args.plan, args.size, args.unet_steps)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
