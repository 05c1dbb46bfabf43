"""encode_text { model, arch?, clip_skip, items: [{ ids: number[77], out }], allow_pickle? } -> { items: [{ out }] }

Each ``out`` gets tensor "context" [77, context_dim] float32: the frozen text encoder's output for
one caption (ids from the TypeScript tokenizer), cached per caption."""
from __future__ import annotations

from typing import Any, Dict

import torch

from ..errors import WorkerError, bad_request
from ..models import default_device, get_sd1
from ..safetensors_io import save_file

BATCH = 16


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    model, clip_skip, items = args.get("model"), args.get("clip_skip", 1), args.get("items")
    if not isinstance(model, str):
        raise bad_request("encode_text: args.model must be a checkpoint path")
    if isinstance(clip_skip, bool) or not isinstance(clip_skip, int) or clip_skip < 1:
        raise bad_request(f"encode_text: args.clip_skip must be an integer >= 1, got {clip_skip!r}")
    if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("out"), str) for i in items):
        raise bad_request("encode_text: args.items must be a list of {ids, out}")
    sd = get_sd1(model, default_device(), torch.float32, bool(args.get("allow_pickle", False)), args.get("arch"))
    length, vocab = sd.config.text.max_length, sd.config.text.vocab_size
    layers = sd.config.text.layers
    if clip_skip > layers:
        raise bad_request(f"encode_text: clip_skip {clip_skip} exceeds the {layers} layers of the {sd.arch} text encoder")
    for n, item in enumerate(items):
        ids = item.get("ids")
        if not isinstance(ids, list) or len(ids) != length or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < vocab for i in ids):
            raise bad_request(f"encode_text: items[{n}].ids must be {length} token ids in 0..{vocab - 1} (the {sd.arch} vocabulary)")
    done = []
    with torch.no_grad():
        for start in range(0, len(items), BATCH):
            if ctx.cancelled():
                raise WorkerError("cancelled", f"encode_text: cancelled after {start} of {len(items)} items")
            chunk = items[start : start + BATCH]
            ids = torch.tensor([item["ids"] for item in chunk], dtype=torch.long)
            contexts = sd.encode_text(ids, clip_skip).float().cpu()
            for item, context in zip(chunk, contexts):
                save_file({"context": context.contiguous()}, item["out"])
                done.append({"out": item["out"]})
            ctx.progress(min(start + BATCH, len(items)), len(items))
    return {"items": done}
