"""Shared by the worker tests that call ops directly: a context that records nothing and never cancels,
the builtin tiny model's byte-level token ids, and the sample op's spec of a kohya-named LoRA file."""


class QuietCtx:
    device = "cpu"

    def progress(self, *args, **extra):
        pass

    def log(self, message):
        pass

    def checkpoint(self, step, path):
        pass

    def cancelled(self):
        return False


def byte_ids(text):
    """CLIP framing (BOS 49406, EOS 49407 also as padding, 77 ids) around the text's UTF-8 bytes as
    content ids: distinct ids per text are all these tests need (every builtin reads CLIP ids)."""
    ids = [49406] + list(text.encode("utf-8"))[:75] + [49407]
    return ids + [49407] * (77 - len(ids))


def kohya_lora_spec(path):
    """The `lora_files` entry of a sample request for a kohya-named LoRA file (lorabuild's own output):
    what src/loras/worker-plan.ts builds for it, written out here for tests that call the op directly."""
    from lorabuild_worker.safetensors_io import read_header

    infos, _meta, _ = read_header(path)
    modules = []
    for key in sorted(infos):
        if key.endswith(".lora_down.weight"):
            name = key[: -len(".lora_down.weight")]
            roles = {"up": f"{name}.lora_up.weight", "down": key}
            if f"{name}.alpha" in infos:
                roles["alpha"] = f"{name}.alpha"
            modules.append({"target": name, "kind": "lora", "tensors": roles})
    return {"path": path, "modules": modules, "skip_keys": []}
