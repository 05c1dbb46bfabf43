"""Multi-head attention core: torch's fused scaled_dot_product_attention where it exists (torch >= 2.0),
otherwise the explicit softmax(QK^T/sqrt(d))V."""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

_sdpa = getattr(F, "scaled_dot_product_attention", None)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """q: [B, Lq, C], k/v: [B, Lk, C] -> [B, Lq, C]. ``mask`` is additive, broadcastable to [B, h, Lq, Lk]."""
    b, lq, c = q.shape
    d = c // heads
    if mask is not None:
        mask = mask.to(q.dtype)
    q, k, v = (t.reshape(b, t.shape[1], heads, d).transpose(1, 2) for t in (q, k, v))
    if _sdpa is not None:
        out = _sdpa(q, k, v, attn_mask=mask)
    else:
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
        if mask is not None:
            scores = scores + mask
        out = torch.matmul(scores.softmax(dim=-1), v)
    return out.transpose(1, 2).reshape(b, lq, c)
