"""Prompt conditioning as ComfyUI's CLIPTextEncode builds it (sd1_clip.encode_token_weights).

The TypeScript side parses the weights and cuts the prompt into chunks of 77 ids (BOS, 75 tokens,
EOS/padding) with one weight per id. Here every chunk is encoded, and when any weight differs from 1
the empty prompt is encoded in the same batch and each weighted token's hidden state is moved away
from the empty prompt's state at that position: z = (z - z_empty) * w + z_empty. The chunks are then
concatenated along the token axis: [1, 77 * chunks, width].
"""
from __future__ import annotations

from typing import Any, List, Optional

import torch


def has_weights(weights: Optional[List[List[float]]]) -> bool:
    return weights is not None and any(w != 1.0 for chunk in weights for w in chunk)


def encode_prompt(sd: Any, chunks: List[List[int]], weights: Optional[List[List[float]]], empty_ids: Optional[List[int]],
                  clip_skip: int) -> torch.Tensor:
    weighted = has_weights(weights)
    if weighted and empty_ids is None:
        raise ValueError("weighted prompts need the empty prompt's ids")
    batch = chunks + ([empty_ids] if weighted else [])
    hidden = sd.encode_text(torch.tensor(batch, dtype=torch.long), clip_skip).float()
    out = hidden[: len(chunks)]
    if weighted:
        empty = hidden[-1:]
        w = torch.tensor(weights, dtype=torch.float32, device=out.device).unsqueeze(-1)
        out = torch.where(w != 1.0, (out - empty) * w + empty, out)
    return out.reshape(1, -1, out.shape[-1])
