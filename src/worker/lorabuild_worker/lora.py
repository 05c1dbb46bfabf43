"""LoRA for the SD1 UNet: training adapters, kohya-format files, and applying LoRA files for sampling.

A LoRA adapter adds ``scale * up(down(x))`` to a frozen layer's output, with ``scale = alpha / rank *
strength``. ``down`` is [rank, in] (a conv with the base layer's kernel for convs), ``up`` is [out, rank]
(1x1 conv for convs) and starts at zero, so a fresh LoRA leaves the model unchanged. Adapters attach
with forward hooks, so several LoRAs stack and each comes off with ``.remove()``.

Training (train.py):
    net = inject_lora(sd, targets="attention", rank=4, alpha=4.0, seed=0, init="kaiming")   # trainable nn.Module
    net.parameters(); net.state_tensors(); net.load_state_tensors(t)       # kohya-named tensors
    save_lora(net, path, metadata)                                          # atomic .safetensors
    net.remove()

Sampling (the render engineer's ops/sample.py):
    handle = apply_lora_file(sd, "/abs/lora.safetensors", strength=0.8)   # strength 0 and < 0 allowed
    ... sd.unet(...) / sd.encode_text(...) now include the LoRA ...
    handle.remove()                                                         # back to the base model
    handle.matched, handle.unmatched                                        # module names used / ignored

Targets (TARGETS): 'attention' = to_q/to_k/to_v/to_out.0 of attn1 and attn2 in every transformer block;
'attention+proj' adds proj_in/proj_out (1x1 convs); 'all-linear' = every Linear and 1x1 conv in the
transformer blocks, ff.net.0.proj and ff.net.2 included (kohya's default for the UNet).
Key names: ``lora_unet_<diffusers module path with '.' -> '_'>.lora_down.weight / .lora_up.weight / .alpha``;
``lora_te_*`` keys (text-encoder LoRAs from other tools) are applied to the text encoder.
"""
from __future__ import annotations

import math
import zlib
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from .checkpoint import SD1
from .diffusers_names import kohya_text_name, kohya_unet_name
from .errors import WorkerError
from .safetensors_io import SafetensorsFile, save_file

ATTENTION_LEAVES = tuple(f"{a}.{p}" for a in ("attn1", "attn2") for p in ("to_q", "to_k", "to_v", "to_out.0"))
PROJ_LEAVES = ("proj_in", "proj_out")
FF_LEAVES = ("ff.net.0.proj", "ff.net.2")
TARGETS: Dict[str, Tuple[str, ...]] = {
    "attention": ATTENTION_LEAVES,
    "attention+proj": ATTENTION_LEAVES + PROJ_LEAVES,
    "all-linear": ATTENTION_LEAVES + PROJ_LEAVES + FF_LEAVES,
}


class LoRAAdapter(nn.Module):
    """down/up pair for one base layer (nn.Linear or nn.Conv2d)."""

    def __init__(self, base: nn.Module, rank: int, alpha: float):
        super().__init__()
        self.rank = rank
        self.alpha = float(alpha)
        self.strength = 1.0
        if isinstance(base, nn.Linear):
            self.down: nn.Module = nn.Linear(base.in_features, rank, bias=False)
            self.up: nn.Module = nn.Linear(rank, base.out_features, bias=False)
        elif isinstance(base, nn.Conv2d):
            self.down = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding, bias=False)
            self.up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        else:
            raise TypeError(f"LoRA needs a Linear or Conv2d base layer, got {type(base).__name__}")

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x)) * (self.alpha / self.rank * self.strength)

    def hook(self, _module: nn.Module, inputs: Tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        return output + self.delta(inputs[0]).to(output.dtype)


def _is_lora_capable(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1))


def unet_target_modules(sd: SD1, targets: str) -> Dict[str, nn.Module]:
    """kohya name -> UNet module for a target set, in UNet order."""
    if targets not in TARGETS:
        raise WorkerError("bad_request", f"unknown LoRA targets {targets!r}; choose one of {', '.join(TARGETS)}")
    leaves = TARGETS[targets]
    found: Dict[str, nn.Module] = {}
    for path, module in sd.unet_model.named_modules():
        if ".transformer_blocks." not in f".{path}" and not path.endswith(PROJ_LEAVES):
            continue
        if not _is_lora_capable(module) or not path.endswith(leaves):
            continue
        name = kohya_unet_name(path, sd.config.unet.num_res_blocks)
        if name is not None:
            found[name] = module
    return found


class LoRANetwork(nn.Module):
    """The trainable adapters of one LoRA, hooked into a model. Parameter order is deterministic."""

    def __init__(self, modules: Dict[str, nn.Module], rank: int, alpha: float, device: Optional[torch.device] = None):
        super().__init__()
        self.rank = rank
        self.alpha = alpha
        self.adapters = nn.ModuleDict()
        self._names: List[str] = list(modules)
        self._handles: list = []
        for name, base in modules.items():
            adapter = LoRAAdapter(base, rank, alpha)
            adapter.to(device=device if device is not None else next(base.parameters()).device)
            self.adapters[name] = adapter
            self._handles.append(base.register_forward_hook(adapter.hook))

    def set_strength(self, strength: float) -> None:
        for adapter in self.adapters.values():
            adapter.strength = strength

    def state_tensors(self) -> Dict[str, torch.Tensor]:
        """kohya-named tensors (float32, CPU)."""
        out: Dict[str, torch.Tensor] = {}
        for name in self._names:
            adapter = self.adapters[name]
            out[f"{name}.lora_down.weight"] = adapter.down.weight.detach().float().cpu().contiguous()
            out[f"{name}.lora_up.weight"] = adapter.up.weight.detach().float().cpu().contiguous()
            out[f"{name}.alpha"] = torch.tensor(float(adapter.alpha), dtype=torch.float32)
        return out

    def load_state_tensors(self, tensors: Dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name in self._names:
                adapter = self.adapters[name]
                for part, param in (("lora_down", adapter.down.weight), ("lora_up", adapter.up.weight)):
                    key = f"{name}.{part}.weight"
                    if key not in tensors or tuple(tensors[key].shape) != tuple(param.shape):
                        got = tuple(tensors[key].shape) if key in tensors else "missing"
                        raise WorkerError("bad_request", f"LoRA state does not fit this model: {key} is {got}, want {tuple(param.shape)}")
                    param.copy_(tensors[key])

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


INITS = ("kaiming", "gaussian")


def _init_adapter(adapter: LoRAAdapter, name: str, seed: int, init: str) -> None:
    """Zero up, and down either kaiming-uniform(a=sqrt 5) (the LoRA paper's and kohya's) or normal with
    std 1/rank (peft's "gaussian", which SimpleLoRA uses). The random draw depends only on (seed, name)."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**62))
    weight = adapter.down.weight
    if init == "gaussian":
        values = torch.randn(weight.shape, generator=gen) / adapter.rank
    else:
        bound = math.sqrt(6.0 / ((1 + 5.0) * weight[0].numel()))  # kaiming_uniform_ with a = sqrt(5)
        values = (torch.rand(weight.shape, generator=gen) * 2 - 1) * bound
    with torch.no_grad():
        weight.copy_(values)
        adapter.up.weight.zero_()


def inject_lora(
    sd: SD1,
    targets: str = "attention",
    rank: int = 4,
    alpha: Optional[float] = None,
    seed: int = 0,
    device: Optional[torch.device] = None,
    init: str = "kaiming",
) -> LoRANetwork:
    """Hook fresh adapters (deterministic from ``seed``) into ``sd``'s UNet. ``device`` defaults to the
    UNet's device; a meta-device model with device='cpu' gives real LoRA tensors without real weights."""
    if rank < 1:
        raise WorkerError("bad_request", f"LoRA rank must be >= 1, got {rank}")
    if init not in INITS:
        raise WorkerError("bad_request", f"unknown LoRA init {init!r}; choose one of {', '.join(INITS)}")
    net = LoRANetwork(unet_target_modules(sd, targets), rank, float(alpha if alpha is not None else rank), device)
    for name, adapter in net.adapters.items():
        _init_adapter(adapter, name, seed, init)  # type: ignore[arg-type]
    return net


def save_lora(net: LoRANetwork, path: str, metadata: Optional[Dict[str, str]] = None) -> None:
    save_file(net.state_tensors(), path, metadata or {})


class LoRAHandle:
    """LoRA file applied to a model; ``remove()`` restores the base model."""

    def __init__(self) -> None:
        self.matched: List[str] = []
        self.unmatched: List[str] = []
        self._handles: list = []
        self.adapters: List[LoRAAdapter] = []

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _module_index(sd: SD1) -> Dict[str, nn.Module]:
    index: Dict[str, nn.Module] = {}
    for path, module in sd.unet_model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            name = kohya_unet_name(path, sd.config.unet.num_res_blocks)
            if name is not None:
                index[name] = module
    for path, module in sd.text_encoder.named_modules():
        if isinstance(module, nn.Linear):
            index[kohya_text_name(path)] = module
    return index


def apply_lora_file(sd: SD1, path: str, strength: float = 1.0) -> LoRAHandle:
    """Hook the LoRA in ``path`` (kohya format) into ``sd`` at ``strength``. Shapes are checked against
    the model before anything is attached; a LoRA for another architecture is refused."""
    index = _module_index(sd)
    handle = LoRAHandle()
    with SafetensorsFile(path) as f:
        groups = sorted({k.rsplit(".lora_down.weight", 1)[0] for k in f.keys() if k.endswith(".lora_down.weight")})
        if not groups:
            raise WorkerError("unsupported_model", f"{path}: no '*.lora_down.weight' tensors; not a kohya-format LoRA")
        pending: List[Tuple[nn.Module, LoRAAdapter]] = []
        for name in groups:
            base = index.get(name)
            if base is None:
                handle.unmatched.append(name)
                continue
            down, up_key = f.get(f"{name}.lora_down.weight"), f"{name}.lora_up.weight"
            if up_key not in f.infos:
                raise WorkerError("unsupported_model", f"{path}: {name} has lora_down but no lora_up")
            up = f.get(up_key)
            rank = down.shape[0]
            alpha = float(f.get(f"{name}.alpha").float().item()) if f"{name}.alpha" in f.infos else float(rank)
            adapter = LoRAAdapter(base, rank, alpha)
            for key, tensor, param in ((f"{name}.lora_down.weight", down, adapter.down.weight), (up_key, up, adapter.up.weight)):
                if tensor.numel() != param.numel() or tensor.shape[0] != param.shape[0]:
                    raise WorkerError(
                        "unsupported_model",
                        f"{path}: {key} has shape {list(tensor.shape)} but this {sd.arch} model needs {list(param.shape)}",
                        "the LoRA was trained for a different base model architecture",
                    )
                with torch.no_grad():
                    param.copy_(tensor.reshape(param.shape))
            adapter.strength = float(strength)
            ref = next(base.parameters())
            adapter.to(device=ref.device, dtype=ref.dtype)
            pending.append((base, adapter))
            handle.matched.append(name)
    if not pending:
        raise WorkerError("unsupported_model", f"{path}: none of its {len(groups)} LoRA modules exist in this {sd.arch} model, e.g. {groups[0]}")
    for base, adapter in pending:
        handle._handles.append(base.register_forward_hook(adapter.hook))
        handle.adapters.append(adapter)
    return handle
