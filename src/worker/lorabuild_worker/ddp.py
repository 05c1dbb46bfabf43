"""Multi-process training: ``devices: N`` runs the train op as N processes started by torch's own
launcher (``python -m torch.distributed.run --standalone --nproc_per_node N``) with
DistributedDataParallel over the LoRA parameters; NCCL on CUDA (one GPU per process), gloo on CPU.

The global batch stays ``batch_size``: every rank draws the whole step's randomness from the same
(seed, step) generators as a single process does and trains on its 1/N slice of the batch, and DDP
averages the gradients, so N processes follow the single-process run (within float rounding: the
batch is summed in a different order). Only rank 0 writes files and events; a stop (cancel, SIGTERM,
SIGINT) is agreed by all ranks at a step boundary, so rank 0 saves a state at the same step the others
stop at, and a resume loads it on every rank.

The serving worker calls ``launch`` (it relays rank 0's events from a file); torchrun runs ``main``.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Dict, Optional

from . import children

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch import nn  # noqa: E402

from .errors import WorkerError  # noqa: E402


class Distributed:
    """This process's place in the group, and the few collectives training needs."""

    def __init__(self, rank: int, world: int, local_rank: int):
        self.rank, self.world, self.local_rank = rank, world, local_rank

    @property
    def writer(self) -> bool:
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's part of a micro-batch: near-equal parts, the first ranks one item more when it does
        not split evenly (an epoch's short last micro-batch), empty when there are fewer items than ranks."""
        return torch.tensor_split(batch, self.world)[self.rank]

    def mean(self, value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64, device=self._device())
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def any(self, flag: bool) -> bool:
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self._device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def wrap(self, unet: nn.Module, lora: nn.Module, device: torch.device) -> nn.Module:
        """DDP over the LoRA parameters only: the adapters hook into the frozen UNet, which is not
        registered (so its weights are neither broadcast nor bucketed)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if device.type == "cuda" else None
        return DistributedDataParallel(_LoraThroughUnet(unet, lora), device_ids=ids, broadcast_buffers=False)

    def _device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")


class _LoraThroughUnet(nn.Module):
    def __init__(self, unet: nn.Module, lora: nn.Module):
        super().__init__()
        self.lora = lora
        self._unet = [unet]

    def forward(self, *args: Any) -> torch.Tensor:
        return self._unet[0](*args)


_current: Optional[Distributed] = None


def current() -> Optional[Distributed]:
    """The process group this process trains in, or None for a single process."""
    return _current


# -- the serving worker's side -------------------------------------------------------------------
def launch(args: Dict[str, Any], ctx: Any, devices: int) -> Dict[str, Any]:
    out_dir = args["out_dir"]
    os.makedirs(out_dir, exist_ok=True)
    request, events = os.path.join(out_dir, "ddp-request.json"), os.path.join(out_dir, "ddp-events.jsonl")
    with open(request, "w", encoding="utf-8") as f:
        json.dump(args, f)
    open(events, "w").close()
    env = dict(os.environ)
    if "LORABUILD_THREADS" not in env:
        env["LORABUILD_THREADS"] = str(max(1, (os.cpu_count() or 1) // devices))
    # lorabuild_worker.launch is torch.distributed.run (with a fix for torch < 2.0 on Python 3.11)
    # torchrun's own log folder (error files of the ranks, which reach us as events): made here and
    # removed after, not left in /tmp as torchelastic_* by every launch
    logs = tempfile.mkdtemp(prefix="lorabuild-torchrun-")
    cmd = [sys.executable, "-m", "lorabuild_worker.launch", "--standalone", f"--nproc_per_node={devices}", "--max_restarts=0", f"--log_dir={logs}", "-m", "lorabuild_worker.ddp", request, events]
    ctx.log(f"train: {devices} processes through torch.distributed.run ({'nccl' if torch.cuda.is_available() else 'gloo'})")
    try:
        proc = children.start(cmd, env=env, stdin=subprocess.DEVNULL)
        try:
            return _relay_until_done(proc, events, ctx, devices)
        finally:
            # an exception on the way (never a normal end) leaves torchrun and its ranks running
            if proc.poll() is None:
                children.kill(proc)
                proc.wait()
            children.finished(proc)
    finally:
        shutil.rmtree(logs, ignore_errors=True)


def _relay_until_done(proc: subprocess.Popen, events: str, ctx: Any, devices: int) -> Dict[str, Any]:
    offset, partial, outcome, stopping = 0, "", None, False
    while True:
        finished = proc.poll() is not None
        with open(events, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        offset += len(chunk)
        lines = (partial + chunk.decode("utf-8")).split("\n")
        partial = lines.pop()
        for line in lines:
            if line.strip():
                outcome = _relay(json.loads(line), ctx) or outcome
        if finished:
            break
        if not stopping and ctx.cancelled():
            stopping = True
            proc.send_signal(signal.SIGTERM)  # torchrun passes it on; the ranks agree on a step and rank 0 saves
        time.sleep(0.1)
    if outcome is None:
        raise WorkerError("internal", f"train: the {devices} training processes exited with code {proc.returncode} without a result", "see the worker log (stderr) for their tracebacks")
    if outcome["type"] == "error":
        raise WorkerError(outcome["code"], outcome["message"], outcome.get("hint"))
    return outcome["result"]


def _relay(event: Dict[str, Any], ctx: Any) -> Optional[Dict[str, Any]]:
    kind = event.get("type")
    if kind == "progress":
        ctx.progress(event["step"], event["total"], **{k: v for k, v in event.items() if k not in ("type", "step", "total")})
    elif kind == "log":
        ctx.log(event["message"])
    elif kind == "checkpoint":
        ctx.checkpoint(event["step"], event["path"])
    elif kind in ("done", "error"):
        return event
    return None


# -- one rank, started by torchrun -----------------------------------------------------------------
class _RankContext:
    """The OpContext of a rank: events go to the file (rank 0 only); a stop is agreed by all ranks."""

    def __init__(self, group: Distributed, events: str):
        self.group = group
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self._events = open(events, "a", encoding="utf-8") if group.writer else None
        self.stop_requested = False

    def emit(self, event: Dict[str, Any]) -> None:
        if self._events is not None:
            self._events.write(json.dumps(event, separators=(",", ":"), allow_nan=False, default=str) + "\n")
            self._events.flush()

    def progress(self, step: int, total: int, **extra: Any) -> None:
        self.emit({"type": "progress", "step": step, "total": total, **{k: v for k, v in extra.items() if v is not None and not (isinstance(v, float) and v != v)}})

    def log(self, message: str) -> None:
        self.emit({"type": "log", "message": message})

    def checkpoint(self, step: int, path: str) -> None:
        self.emit({"type": "checkpoint", "step": step, "path": path})

    def cancelled(self) -> bool:
        return self.group.any(self.stop_requested)


def main() -> int:
    global _current
    request, events = sys.argv[1], sys.argv[2]
    rank, world, local_rank = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0"))
    threads = os.environ.get("LORABUILD_THREADS")
    torch.set_num_threads(max(1, int(threads) if threads else 1))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    _current = Distributed(rank, world, local_rank)
    ctx = _RankContext(_current, events)

    def stop(*_: Any) -> None:
        ctx.stop_requested = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    from .train import run_training

    with open(request, encoding="utf-8") as f:
        args = json.load(f)
    try:
        ctx.emit({"type": "done", "result": run_training(args, ctx)})
        return 0
    except WorkerError as exc:
        ctx.emit({"type": "error", "code": exc.code, "message": exc.message, **({"hint": exc.hint} if exc.hint else {})})
        return 1
    except Exception as exc:  # reported like the serving worker does
        traceback.print_exc(file=sys.stderr)
        ctx.emit({"type": "error", "code": "internal", "message": f"train: {type(exc).__name__}: {exc}"})
        return 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    # run the package's copy of this module, the one train.py imports: its `_current` is what
    # ddp.current() reads (running __main__'s own copy would leave that None and launch again)
    from lorabuild_worker.ddp import main as rank_main

    sys.exit(rank_main())
