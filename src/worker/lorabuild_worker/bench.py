"""Training throughput: ``python -m lorabuild_worker.bench --arch tiny|sd15 --resolution 512 --batch 1``.

Runs the real training step (same Trainer as the train op) on random cached latents/contexts with a
random-weight model of the chosen architecture, and prints one JSON line: it/s, peak memory and, on
CUDA for sd15, the fraction of the GPU's peak reached (a step costs about 1.73 TFLOP per image at
512 px with cached latents). Nothing is read from or written to disk.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from .checkpoint import empty_sd1  # noqa: E402
from .configs import CONFIGS  # noqa: E402
from .train import Dataset, Trainer, choose_precision, parse_params  # noqa: E402

SD15_TFLOP_PER_IMAGE_512 = 1.73
# dense bf16 tensor-core peaks (TFLOP/s) for the fraction-of-peak figure
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "RTX 3050": 35.0, "RTX 4090": 165.0}


def _random_init(sd) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in sd.modules().values():
            for p in module.parameters():
                fan_in = p[0].numel() if p.dim() > 1 else 1
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * fan_in**-0.5 if p.dim() > 1 else torch.ones(p.shape))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=sorted(CONFIGS), default="tiny")
    ap.add_argument("--resolution", type=int, default=None)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--targets", default="attention")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--mixed-precision", default="auto")
    ap.add_argument("--gradient-checkpointing", default="off")
    ap.add_argument("--compile", action="store_true")
    ns = ap.parse_args()
    threads = os.environ.get("LORABUILD_THREADS")
    torch.set_num_threads(max(1, int(threads) if threads else (os.cpu_count() or 1)))

    config = CONFIGS[ns.arch]
    resolution = ns.resolution or config.native_resolution
    params = parse_params({"batch_size": ns.batch, "targets": ns.targets, "device": ns.device, "mixed_precision": ns.mixed_precision,
                           "gradient_checkpointing": ns.gradient_checkpointing, "compile": ns.compile, "resolution": resolution})
    precision = choose_precision(params)
    sd = empty_sd1(ns.arch, precision.device, precision.model_dtype)
    _random_init(sd)
    sd.unet_model.gradient_checkpointing = ns.gradient_checkpointing == "on"
    items = max(8, ns.batch)
    g = torch.Generator().manual_seed(1)
    latent = (items, 4, resolution // 8, resolution // 8)
    data = Dataset.from_tensors(torch.randn(latent, generator=g), torch.randn(latent, generator=g), torch.randn((items, 77, config.unet.context_dim), generator=g))
    trainer = Trainer(sd, data, params, ns.warmup + ns.steps, precision)
    cuda = precision.device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    for _ in range(ns.warmup):
        trainer.train_step()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(ns.steps):
        trainer.train_step()
    sync()
    seconds = time.perf_counter() - start
    its = ns.steps / seconds
    result = {"arch": ns.arch, "resolution": resolution, "batch": ns.batch, "device": precision.device.type, "threads": torch.get_num_threads(),
              "precision": str(precision.autocast_dtype or "fp32").replace("torch.", ""), "gradient_checkpointing": ns.gradient_checkpointing,
              "it_s": round(its, 3), "images_s": round(its * ns.batch, 3), "torch": torch.__version__}
    if cuda:
        name = torch.cuda.get_device_name(0)
        result.update(gpu=name, peak_memory_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2))
        if ns.arch == "sd15":
            tflops = its * ns.batch * SD15_TFLOP_PER_IMAGE_512 * (resolution / 512) ** 2
            result["tflop_s"] = round(tflops, 1)
            peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
            if peak:
                result["fraction_of_peak"] = round(tflops / peak, 3)
    else:
        import resource

        result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
