"""Map UNet module paths from LDM naming (what our modules and checkpoints use) to diffusers naming (what
kohya LoRA keys are built from: ``lora_unet_`` + diffusers path with '.' -> '_', and what diffusers
model folders store, see diffusers_layout.py).

    input_blocks.1.1.transformer_blocks.0.attn1.to_q  ->  down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q
    middle_block.1.proj_in                              ->  mid_block.attentions.0.proj_in
    output_blocks.3.0.in_layers.2                       ->  up_blocks.1.resnets.0.conv1
"""
from __future__ import annotations

from typing import Optional

RESNET_LAYERS = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "emb_layers.1": "time_emb_proj",
    "skip_connection": "conv_shortcut",
}


def _resnet(prefix: str, rest: str) -> Optional[str]:
    mapped = RESNET_LAYERS.get(rest)
    return None if mapped is None else f"{prefix}.{mapped}"


def ldm_to_diffusers(path: str, num_res_blocks: int = 2) -> Optional[str]:
    """Return the diffusers path of an LDM UNet module path, or None for modules without one (norms,
    activations, containers). ``num_res_blocks`` is 2 for every SD1 config."""
    parts = path.split(".")
    per_level = num_res_blocks + 1
    if parts[0] == "input_blocks" and len(parts) >= 3:
        n, slot, rest = int(parts[1]), parts[2], ".".join(parts[3:])
        if n == 0:
            return "conv_in" if not rest else None
        level, j = divmod(n - 1, per_level)
        if j == num_res_blocks:  # the downsampler position
            return f"down_blocks.{level}.downsamplers.0.conv" if rest == "op" else None
        if slot == "0":
            return _resnet(f"down_blocks.{level}.resnets.{j}", rest)
        return f"down_blocks.{level}.attentions.{j}" + (f".{rest}" if rest else "")
    if parts[0] == "middle_block" and len(parts) >= 2:
        slot, rest = parts[1], ".".join(parts[2:])
        if slot == "1":
            return "mid_block.attentions.0" + (f".{rest}" if rest else "")
        return _resnet(f"mid_block.resnets.{0 if slot == '0' else 1}", rest)
    if parts[0] == "output_blocks" and len(parts) >= 3:
        n, slot, rest = int(parts[1]), parts[2], ".".join(parts[3:])
        level, j = divmod(n, per_level)
        if slot == "0":
            return _resnet(f"up_blocks.{level}.resnets.{j}", rest)
        if rest == "conv":  # the upsampler sits in slot 1 (no attention) or slot 2
            return f"up_blocks.{level}.upsamplers.0.conv"
        return f"up_blocks.{level}.attentions.{j}" + (f".{rest}" if rest else "")
    top = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2", "out.0": "conv_norm_out", "out.2": "conv_out"}
    return top.get(path)


def kohya_unet_name(ldm_path: str, num_res_blocks: int = 2) -> Optional[str]:
    path = ldm_to_diffusers(ldm_path, num_res_blocks)
    return None if path is None else "lora_unet_" + path.replace(".", "_")


def kohya_text_name(text_path: str) -> str:
    """text_model.encoder.layers.0.self_attn.q_proj -> lora_te_text_model_encoder_layers_0_self_attn_q_proj"""
    return "lora_te_" + text_path.replace(".", "_")
