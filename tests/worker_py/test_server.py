"""The JSON-lines server end to end through a real subprocess: hello, build_builtin, encode, train with
checkpoint events, cancel, SIGTERM, malformed requests. Every stdout line must be a protocol event."""
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "src", "worker"))

from lorabuild_worker.safetensors_io import read_header  # noqa: E402

TIMEOUT = 120


def byte_ids(text):
    """CLIP framing (BOS 49406, content, EOS 49407 padding); the content ids are the text's UTF-8 bytes:
    distinct ids per text are all these tests need."""
    ids = [49406] + list(text.encode("utf-8"))[:75] + [49407]
    return ids + [49407] * (77 - len(ids))


def processes_naming(path):
    """pids of processes whose command line names ``path``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if path.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


class Worker:
    def __init__(self):
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src", "worker"), LORABUILD_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lorabuild_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            bufsize=1,
        )
        self.events: "queue.Queue" = queue.Queue()
        self.stderr = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        self.next_id = 0

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(line)
        self.events.put(None)

    def send(self, op, args=None, raw=None):
        self.next_id += 1
        line = raw if raw is not None else json.dumps({"id": self.next_id, "op": op, "args": args or {}})
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.next_id

    def event(self):
        line = self.events.get(timeout=TIMEOUT)
        if line is None:
            raise AssertionError("worker closed stdout; stderr:\n" + "".join(self.stderr[-30:]))
        return json.loads(line)  # a non-JSON stdout line fails the test here

    def until_end(self, request_id):
        """All events of one request up to its done/error event (events of others are kept aside)."""
        got = []
        while True:
            event = self.event()
            if event["id"] != request_id:
                continue
            got.append(event)
            if event["type"] in ("done", "error"):
                return got

    def until_progress(self, request_id):
        """Waits for the request's first progress event; its end before one fails the test."""
        while True:
            event = self.event()
            if event["id"] == request_id and event["type"] in ("done", "error"):
                raise AssertionError(f"request {request_id} ended before any progress: {event}")
            if event["id"] == request_id and event["type"] == "progress":
                return event

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass


class ServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="lorabuild-server-")
        cls.worker = Worker()
        cls.model = os.path.join(cls.dir, "tiny.safetensors")
        events = cls.worker.until_end(cls.worker.send("build_builtin", {"arch": "tiny", "seed": 0, "path": cls.model}))
        assert events[-1]["type"] == "done", events
        images, texts = [], []
        for i in range(2):
            path = os.path.join(cls.dir, f"{i}.jpg")
            Image.fromarray(np.random.default_rng(i).integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(path)
            images.append({"image": path, "out": os.path.join(cls.dir, f"{i}.latent.safetensors")})
            texts.append({"ids": byte_ids(f"a face, side view {i}"), "out": os.path.join(cls.dir, f"{i}.context.safetensors")})
        for op, args in (("encode_latents", {"model": cls.model, "resolution": 64, "items": images}), ("encode_text", {"model": cls.model, "clip_skip": 1, "items": texts})):
            events = cls.worker.until_end(cls.worker.send(op, args))
            assert events[-1]["type"] == "done", events
        cls.items = [{"latents": i["out"], "context": t["out"]} for i, t in zip(images, texts)]

    @classmethod
    def tearDownClass(cls):
        cls.worker.close()
        shutil.rmtree(cls.dir)

    def train_args(self, out, steps, every):
        return {"model": self.model, "items": self.items, "params": {"rank": 2, "seed": 0}, "out_dir": os.path.join(self.dir, out), "checkpoint_every": every, "steps": steps, "metadata": {}}

    def test_hello_reports_versions_and_device(self):
        events = self.worker.until_end(self.worker.send("hello"))
        result = events[-1]["result"]
        self.assertEqual(events[-1]["type"], "done")
        for key in ("worker_version", "protocol", "python", "torch", "numpy", "cuda", "device", "blas", "threads"):
            self.assertIn(key, result)
        self.assertEqual(result["protocol"], 1)
        self.assertEqual(result["threads"], 1, "LORABUILD_THREADS is honoured")

    def test_build_and_encode_wrote_real_files(self):
        self.assertEqual(read_header(self.model)[1]["lorabuild.arch"], "tiny")
        infos = read_header(self.items[0]["latents"])[0]
        self.assertEqual(sorted(infos), ["latent", "latent_flipped", "logvar", "logvar_flipped"])
        self.assertEqual(read_header(self.items[0]["context"])[0]["context"].shape, (77, 64))

    def test_train_streams_progress_and_checkpoints(self):
        events = self.worker.until_end(self.worker.send("train", self.train_args("run-a", 6, 3)))
        done = events[-1]
        self.assertEqual(done["type"], "done", events)
        checkpoints = [(e["step"], e["path"]) for e in events if e["type"] == "checkpoint"]
        out = os.path.join(self.dir, "run-a")
        self.assertEqual(checkpoints, [(3, os.path.join(out, "lora-step3.safetensors")), (6, os.path.join(out, "lora-step6.safetensors"))])
        progress = [e for e in events if e["type"] == "progress"]
        self.assertEqual((progress[-1]["step"], progress[-1]["total"]), (6, 6))
        self.assertIn("loss", progress[-1])
        self.assertIn("its", progress[-1])
        self.assertEqual(done["result"]["final"], os.path.join(out, "lora.safetensors"))
        self.assertEqual([s for s, _ in done["result"]["loss_curve"]], [1, 2, 3, 4, 5, 6])
        self.assertTrue(os.path.isfile(done["result"]["state"]))

    def test_cancel_stops_training_with_a_resumable_state(self):
        train_id = self.worker.send("train", self.train_args("run-cancel", 5000, 1000))
        while True:
            event = self.worker.event()
            if event["id"] == train_id and event["type"] == "progress":
                break
        cancel_id = self.worker.send("cancel", {"target": train_id})
        seen = {}
        while len(seen) < 2:
            event = self.worker.event()
            if event["id"] in (train_id, cancel_id) and event["type"] in ("done", "error"):
                seen[event["id"]] = event
        self.assertEqual(seen[cancel_id]["type"], "done")
        self.assertEqual(seen[train_id]["type"], "error")
        self.assertEqual(seen[train_id]["code"], "cancelled")
        state = os.path.join(self.dir, "run-cancel", "state.safetensors")
        step = json.loads(read_header(state)[1]["lorabuild.state"])["step"]
        self.assertGreaterEqual(step, 1)
        self.assertLess(step, 5000)
        # the server keeps serving
        self.assertEqual(self.worker.until_end(self.worker.send("hello"))[-1]["type"], "done")

    def test_bad_requests_get_error_events(self):
        self.worker.send(None, raw="{this is not json")
        event = self.worker.event()
        self.assertEqual((event["id"], event["type"], event["code"]), (-1, "error", "bad_request"))
        events = self.worker.until_end(self.worker.send("no_such_op"))
        self.assertEqual(events[-1]["code"], "bad_request")
        self.assertIn("no_such_op", events[-1]["message"])
        events = self.worker.until_end(self.worker.send("inspect_checkpoint", {"path": os.path.join(self.dir, "missing.ckpt")}))
        self.assertEqual(events[-1]["code"], "io")
        ckpt = os.path.join(self.dir, "model.ckpt")
        with open(ckpt, "wb") as f:
            f.write(b"\x80\x02}q\x00.")
        events = self.worker.until_end(self.worker.send("inspect_checkpoint", {"path": ckpt}))
        self.assertEqual(events[-1]["code"], "pickle_refused")
        self.assertIn("allow_pickle", events[-1]["hint"])
        events = self.worker.until_end(self.worker.send("inspect_checkpoint", {"path": self.model}))
        self.assertEqual(events[-1]["result"]["family"], "sd1")
        self.assertEqual(events[-1]["result"]["arch"], "tiny")

    def test_stray_prints_go_to_stderr_not_the_protocol_stream(self):
        code = (
            "import os, sys\n"
            "from lorabuild_worker.__main__ import EventWriter, _protocol_stdout\n"
            "writer = EventWriter(_protocol_stdout())\n"
            "print('python-level noise')\n"
            "os.write(1, b'c-level noise\\n')\n"
            "writer.emit({'id': 1, 'type': 'log', 'message': 'hi'})\n"
        )
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src", "worker"))
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=TIMEOUT)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.stdout, '{"id":1,"type":"log","message":"hi"}\n')
        self.assertIn("python-level noise", run.stderr)
        self.assertIn("c-level noise", run.stderr)

    def test_stop_signals_cancel_the_running_op_at_a_step_boundary_and_exit(self):
        # SIGTERM (kill), SIGINT (a terminal's Ctrl-C reaches the whole process group) and SIGHUP (the
        # terminal closed): the step finishes, the resumable state is written, the worker exits cleanly
        for name in ("SIGTERM", "SIGINT", "SIGHUP"):
            with self.subTest(signal=name):
                worker = Worker()
                try:
                    args = self.train_args(f"run-{name}", 5000, 1000)
                    train_id = worker.send("train", args)
                    while True:
                        event = worker.event()
                        if event["id"] == train_id and event["type"] == "progress":
                            break
                    worker.proc.send_signal(getattr(signal, name))
                    events = worker.until_end(train_id)
                    self.assertEqual(events[-1]["code"], "cancelled", events[-1])
                    self.assertEqual(worker.proc.wait(timeout=TIMEOUT), 0)
                    state = os.path.join(args["out_dir"], "state.safetensors")
                    step = json.loads(read_header(state)[1]["lorabuild.state"])["step"]
                    self.assertIn(f"cancelled after step {step};", events[-1]["message"])
                    self.assertNotIn("KeyboardInterrupt", "".join(worker.stderr))
                finally:
                    worker.close()

    def test_stdin_closed_mid_op_exits_at_once_and_writes_nothing_more(self):
        # what kill -9 of lorabuild looks like to the worker: its stdin ends while a request runs
        worker = Worker()
        try:
            args = self.train_args("run-orphan", 100000, 50)
            worker.until_progress(worker.send("train", args))
            before = sorted(os.listdir(args["out_dir"])) if os.path.isdir(args["out_dir"]) else []
            closed = time.monotonic()
            worker.proc.stdin.close()
            code = worker.proc.wait(timeout=30)
            self.assertLess(time.monotonic() - closed, 5.0)
            self.assertEqual(code, 3)
            time.sleep(0.5)
            after = sorted(os.listdir(args["out_dir"])) if os.path.isdir(args["out_dir"]) else []
            self.assertEqual(after, before, "the worker wrote files after its parent was gone")
        finally:
            worker.close()

    def test_stdin_closed_mid_ddp_training_takes_torchrun_and_its_ranks_along(self):
        # devices: 2 trains in processes torchrun starts: they must not keep training (and writing)
        # once lorabuild is gone
        worker = Worker()
        try:
            args = self.train_args("run-orphan-ddp", 100000, 50)
            args["params"].update({"devices": 2, "batch_size": 2})
            worker.until_progress(worker.send("train", args))
            request = os.path.join(args["out_dir"], "ddp-request.json")
            self.assertTrue(processes_naming(request), "no torchrun processes found while training")
            worker.proc.stdin.close()
            self.assertEqual(worker.proc.wait(timeout=30), 3)
            deadline = time.monotonic() + 10
            while processes_naming(request) and time.monotonic() < deadline:
                time.sleep(0.2)
            left = processes_naming(request)
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            self.assertEqual(left, [], "torchrun or a rank outlived the worker")
        finally:
            worker.close()

    def test_batch_mode_runs_its_request_whatever_its_parent(self):
        # a Slurm job: stdin is the request file (it ends at once) and the parent is slurmstepd
        with tempfile.TemporaryDirectory() as tmp:
            request, events = os.path.join(tmp, "request.json"), os.path.join(tmp, "events.jsonl")
            with open(request, "w") as f:
                json.dump({"id": 1, "op": "hello", "args": {}}, f)
            env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src", "worker"), LORABUILD_THREADS="1", LORABUILD_PARENT_PID="1")
            run = subprocess.run([sys.executable, "-m", "lorabuild_worker", "--batch", request, "--events", events], env=env, capture_output=True, text=True, timeout=TIMEOUT)
            self.assertEqual(run.returncode, 0, run.stderr)
            with open(events) as f:
                done = [json.loads(line) for line in f if line.strip()]
            self.assertEqual([(e["id"], e["type"]) for e in done], [(0, "done"), (1, "done")])

    def test_a_new_parent_means_the_old_one_is_gone(self):
        # a middle process starts the worker with a stdin it keeps nowhere else, then dies: the worker is
        # reparented (its stdin may stay open through other holders) and must notice on its own
        code = (
            "import os, subprocess, sys\n"
            "r, w = os.pipe()\n"
            "env = dict(os.environ, LORABUILD_PARENT_PID=str(os.getpid()))\n"
            "p = subprocess.Popen([sys.executable, '-m', 'lorabuild_worker'], stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)\n"
            "holder = subprocess.Popen(['sleep', '60'], pass_fds=(w,))\n"
            "print(p.pid, holder.pid, flush=True)\n"
            "os._exit(0)\n"
        )
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src", "worker"), LORABUILD_THREADS="1")
        # a `sleep` keeps the write end of the worker's stdin open: no end of stdin, only a new parent
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=TIMEOUT)
        pid, holder = (int(x) for x in run.stdout.split())
        self.addCleanup(lambda: subprocess.run(["kill", "-9", str(holder)], capture_output=True))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
            self.fail("the worker outlived its parent by 30 s")


if __name__ == "__main__":
    unittest.main()
