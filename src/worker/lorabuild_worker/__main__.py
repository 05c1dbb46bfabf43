"""JSON-lines server: ``python -m lorabuild_worker`` (PYTHONPATH=src/worker).

Reads requests ``{"id", "op", "args"}`` from stdin, runs them one at a time through
``lorabuild_worker.ops.<op>.run(args, ctx)`` (imported on first use) and writes events to stdout, one JSON
object per line, flushed. stdout carries only protocol lines: Python-level and C-level prints are sent to
stderr. A reader thread handles ``cancel`` while an op runs. SIGTERM, SIGINT and SIGHUP cancel
everything (a training stops at the next step boundary with its resumable state saved), then the server
exits: a terminal's Ctrl-C reaches the whole process group, this worker included, and must not kill it
with a KeyboardInterrupt mid-step. End of stdin: the running op finishes, then the server exits.
"""
from __future__ import annotations

import importlib
import json
import os
import queue
import re
import signal
import sys
import threading
import traceback
from typing import Any, Dict, Optional, Set, TextIO

# OpenMP threads that spin while waiting make torch ~10x slower when the cores are shared (measured:
# 20 tiny steps, 2 threads, 2 busy cores: 189 s spinning, 15 s passive). Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

OP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class EventWriter:
    def __init__(self, stream: TextIO):
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: Dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), allow_nan=False, default=str)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class OpContext:
    """What an op sees of the server: events for its request and its cancellation flag."""

    def __init__(self, server: "Server", request_id: int):
        self._server = server
        self.id = request_id
        import torch

        self.device = "cuda" if torch.cuda.is_available() else "cpu"

    def progress(self, step: int, total: int, **extra: Any) -> None:
        event = {"id": self.id, "type": "progress", "step": step, "total": total}
        event.update({k: v for k, v in extra.items() if v is not None and not (isinstance(v, float) and v != v)})
        self._server.writer.emit(event)

    def log(self, message: str) -> None:
        self._server.writer.emit({"id": self.id, "type": "log", "message": message})

    def checkpoint(self, step: int, path: str) -> None:
        self._server.writer.emit({"id": self.id, "type": "checkpoint", "step": step, "path": path})

    def cancelled(self) -> bool:
        return self._server.is_cancelled(self.id)


class Server:
    def __init__(self, stdin: TextIO, writer: EventWriter):
        self.stdin = stdin
        self.writer = writer
        self.requests: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue()
        self._cancelled: Set[int] = set()
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    # -- cancellation ------------------------------------------------------------------------------
    def cancel(self, target: int) -> None:
        with self._lock:
            self._cancelled.add(target)

    def cancel_all(self) -> None:
        self.stopping.set()

    def is_cancelled(self, request_id: int) -> bool:
        with self._lock:
            return self.stopping.is_set() or request_id in self._cancelled

    # -- input -------------------------------------------------------------------------------------
    def read_loop(self) -> None:
        for line in self.stdin:
            line = line.strip()
            if not line:
                continue
            request = self._parse(line)
            if request is None:
                continue
            if request["op"] == "cancel":
                target = request["args"].get("target")
                if isinstance(target, int) and not isinstance(target, bool):
                    self.cancel(target)
                    self.writer.emit({"id": request["id"], "type": "done", "result": {"target": target}})
                else:
                    self._error(request["id"], "bad_request", "cancel: args.target must be the id of a request")
                continue
            self.requests.put(request)
        self.requests.put(None)

    def _parse(self, line: str) -> Optional[Dict[str, Any]]:
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            self._error(-1, "bad_request", f"request is not JSON ({exc.msg} at column {exc.colno}): {line[:120]}")
            return None
        rid = request.get("id") if isinstance(request, dict) else None
        if not isinstance(rid, int) or isinstance(rid, bool):
            self._error(-1, "bad_request", f"request needs an integer id: {line[:120]}")
            return None
        if not isinstance(request.get("op"), str) or not OP_NAME.match(request["op"]):
            self._error(rid, "bad_request", f"request {rid} needs an op name such as \"hello\"")
            return None
        args = request.get("args", {})
        if not isinstance(args, dict):
            self._error(rid, "bad_request", f"request {rid}: args must be an object")
            return None
        return {"id": rid, "op": request["op"], "args": args}

    # -- execution ---------------------------------------------------------------------------------
    def serve(self) -> None:
        reader = threading.Thread(target=self.read_loop, name="stdin-reader", daemon=True)
        reader.start()
        while True:
            try:
                request = self.requests.get(timeout=0.2)
            except queue.Empty:
                if self.stopping.is_set():
                    return
                continue
            if request is None:
                return
            if self.is_cancelled(request["id"]):
                self._error(request["id"], "cancelled", f"{request['op']}: cancelled before it started")
            else:
                self.execute(request)
            if self.stopping.is_set():
                self._drain()
                return

    def _drain(self) -> None:
        while True:
            try:
                request = self.requests.get_nowait()
            except queue.Empty:
                return
            if request is not None:
                self._error(request["id"], "cancelled", f"{request['op']}: the worker is shutting down")

    def execute(self, request: Dict[str, Any]) -> None:
        from .errors import WorkerError

        rid, op = request["id"], request["op"]
        try:
            module = self._load(op)
            result = module.run(request["args"], OpContext(self, rid))
            self.writer.emit({"id": rid, "type": "done", "result": result})
        except WorkerError as exc:
            self._error(rid, exc.code, exc.message, exc.hint)
        except MemoryError:
            self._error(rid, "oom", f"{op}: out of memory", "lower batch_size or resolution, or close other programs")
        except Exception as exc:  # the op failed in a way it did not foresee: report, keep serving
            traceback.print_exc(file=sys.stderr)
            code = "oom" if "out of memory" in str(exc).lower() else "internal"
            self._error(rid, code, f"{op}: {type(exc).__name__}: {exc}", "see the worker log (stderr) for the traceback" if code == "internal" else "lower batch_size to 1, enable gradient_checkpointing, or lower the resolution")

    def _load(self, op: str) -> Any:
        from .errors import WorkerError

        if op in ("cancel",):
            raise WorkerError("bad_request", "cancel is handled by the reader")
        name = f"lorabuild_worker.ops.{op}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                raise WorkerError("bad_request", f"unknown op {op!r}") from None
            raise
        if not callable(getattr(module, "run", None)):
            raise WorkerError("bad_request", f"unknown op {op!r}")
        return module

    def _error(self, rid: int, code: str, message: str, hint: Optional[str] = None) -> None:
        event: Dict[str, Any] = {"id": rid, "type": "error", "code": code, "message": message}
        if hint:
            event["hint"] = hint
        self.writer.emit(event)


def _protocol_stdout() -> TextIO:
    """Keep a private handle on the real stdout and point fd 1 (and sys.stdout) at stderr."""
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))


def batch(request_file: str, events_file: str) -> int:
    """One request from a file, events appended to a file: how a Slurm job runs the worker
    (src/cluster/slurm-worker.ts tails the file). Request 0 is always ``hello``, so the submitting
    side learns the versions and device of the node that ran the job."""
    with open(request_file, encoding="utf-8") as f:
        request = f.read().strip()
    with open(events_file, "a", encoding="utf-8") as events:
        writer = EventWriter(events)
        import io

        import torch

        threads = os.environ.get("LORABUILD_THREADS")
        torch.set_num_threads(max(1, int(threads) if threads else (os.cpu_count() or 1)))
        hello = json.dumps({"id": 0, "op": "hello", "args": {}})
        server = Server(io.StringIO(hello + "\n" + request + "\n"), writer)
        for signum in STOP_SIGNALS:
            signal.signal(signum, lambda *_: server.cancel_all())
        server.serve()
    return 0


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--batch" and sys.argv[3] == "--events":
        return batch(sys.argv[2], sys.argv[4])
    writer = EventWriter(_protocol_stdout())
    server = Server(sys.stdin, writer)
    # before torch loads (seconds): a Ctrl-C from then on stops the work instead of raising KeyboardInterrupt
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: server.cancel_all())
    import torch

    threads = os.environ.get("LORABUILD_THREADS")
    torch.set_num_threads(max(1, int(threads) if threads else (os.cpu_count() or 1)))
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
