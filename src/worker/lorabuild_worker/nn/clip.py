"""The CLIP text encoder SD1.x conditions on (CLIP ViT-L/14's text tower for SD15), with the module
names of cond_stage_model.transformer.text_model.* in a single-file checkpoint. Token ids come from
the TypeScript tokenizer; this module only turns ids into hidden states.
"""
from __future__ import annotations

import torch
from torch import nn

from ..configs import TextConfig
from .attention import attention
from .layers import embedding, layer_norm, linear


class CLIPAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = linear(width, width)
        self.k_proj = linear(width, width)
        self.v_proj = linear(width, width)
        self.out_proj = linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out_proj(attention(self.q_proj(x), self.k_proj(x), self.v_proj(x), self.heads, mask))


class CLIPMLP(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc1 = linear(width, width * 4)
        self.fc2 = linear(width * 4, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        return self.fc2(h * torch.sigmoid(1.702 * h))  # quick_gelu, as CLIP was trained


class CLIPLayer(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.self_attn = CLIPAttention(width, heads)
        self.layer_norm1 = layer_norm(width)
        self.mlp = CLIPMLP(width)
        self.layer_norm2 = layer_norm(width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEmbeddings(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.token_embedding = embedding(cfg.vocab_size, cfg.width)
        self.position_embedding = embedding(cfg.max_length, cfg.width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.token_embedding(ids) + self.position_embedding(positions)[None]


class CLIPEncoder(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.layers = nn.ModuleList([CLIPLayer(cfg.width, cfg.heads) for _ in range(cfg.layers)])


class CLIPTextTransformer(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = CLIPEmbeddings(cfg)
        self.encoder = CLIPEncoder(cfg)
        self.final_layer_norm = layer_norm(cfg.width)

    def forward(self, ids: torch.Tensor, clip_skip: int = 1) -> torch.Tensor:
        """ids [B, L] -> hidden states [B, L, width]. clip_skip=N takes the output of the N-th layer from
        the end and applies the final layer norm to it (what ComfyUI and A1111 do for SD1)."""
        if not 1 <= clip_skip <= len(self.encoder.layers):
            raise ValueError(f"clip_skip must be between 1 and {len(self.encoder.layers)} for this text encoder, got {clip_skip}")
        if int(ids.min()) < 0 or int(ids.max()) >= self.cfg.vocab_size:
            raise ValueError(f"token ids must lie in 0..{self.cfg.vocab_size - 1}; got {int(ids.min())}..{int(ids.max())}")
        length = ids.shape[1]
        x = self.embeddings(ids)
        causal = torch.full((length, length), float("-inf"), device=ids.device).triu(1)
        keep = len(self.encoder.layers) - (clip_skip - 1)
        for layer in self.encoder.layers[:keep]:
            x = layer(x, causal)
        return self.final_layer_norm(x)


class CLIPTextModel(nn.Module):
    """Wrapper so parameter names read text_model.* like the checkpoint's cond_stage_model.transformer.text_model.*."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.text_model = CLIPTextTransformer(cfg)

    def forward(self, ids: torch.Tensor, clip_skip: int = 1) -> torch.Tensor:
        return self.text_model(ids, clip_skip)
