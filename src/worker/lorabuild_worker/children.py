"""Processes the worker starts (torchrun for ``devices: N``), so that a worker whose parent is gone
takes them with it: each runs in a process group of its own, killed as a whole (torchrun and its ranks)."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
from typing import Set

_lock = threading.Lock()
_running: Set[subprocess.Popen] = set()


def start(cmd: list, **kwargs) -> subprocess.Popen:
    """Popen in a new process group, tracked until ``finished``. Stop signals reach it only through
    the worker (which relays a cancel as SIGTERM), never straight from the terminal."""
    with _lock:
        proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
        _running.add(proc)
    return proc


def finished(proc: subprocess.Popen) -> None:
    with _lock:
        _running.discard(proc)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of ``proc``; never raises."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def kill_all() -> None:
    """SIGKILL every tracked process group; safe from any thread."""
    with _lock:
        procs = list(_running)
    for proc in procs:
        kill(proc)
