"""Applying LoRA files to a loaded SD1 for rendering, the way ComfyUI's Load LoRA node does it
(comfy/lora.py and comfy/weight_adapter/*): weights are patched, not hooked. For every targeted Linear or
Conv2d the weight is copied to float32, each LoRA of the stack adds its difference in stack order
(``strength_model`` for UNet modules, ``strength_clip`` for text-encoder modules), and the sum is cast back
to the model's dtype once. ``restore()`` copies the saved original weights back, bit for bit.

Which tensor plays which role for which module is decided by the TypeScript side (src/loras/), which
knows every key spelling; a file spec names its modules explicitly:

    spec = {"path": "/abs/80s.safetensors", "skip_keys": [<keys deliberately not applied>], "modules": [
        {"target": "lora_unet_down_blocks_0_attentions_0_proj_in", "kind": "lora",
         "tensors": {"up": "<key>", "down": "<key>", "alpha": "<key>"}}, ...]}
    lora = LoraFile.load(sd, spec)             # checks targets, roles, shapes; reads the tensors
    patcher = WeightPatcher(sd)
    patcher.apply([(lora, 0.8, 1.0)])           # (file, strength_model, strength_clip), in stack order
    ... sample ...
    patcher.restore()

Differences (scale = alpha / rank when the file has an alpha for the module, else 1):
    lora  up @ down, flattened and reshaped to the weight (LoCon convs, 3x3 included); with a Tucker
          ``mid``: up · mid · down
    loha  (w1a @ w1b) * (w2a @ w2b), or the CP form with t1/t2
    lokr  kron(w1, w2); w1 and w2 given or as a @ b products (w2 optionally Tucker with t2); the scale
          uses the rank of the factorised one (w2's when both are)
W' = W + strength * scale * dW, or ComfyUI's weight_decompose when the module has a ``dora_scale`` (DoRA).
A strength of 0 adds nothing: the module keeps its weight exactly (as ComfyUI's LoraLoader skips a LoRA
whose two strengths are 0).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .checkpoint import SD1
from .errors import WorkerError, bad_request
from .lora import _module_index
from .safetensors_io import SafetensorsFile

ROLES: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    # kind: (required roles, optional roles)
    "lora": (("up", "down"), ("mid", "alpha", "dora_scale")),
    "loha": (("w1a", "w1b", "w2a", "w2b"), ("t1", "t2", "alpha", "dora_scale")),
    "lokr": ((), ("w1", "w2", "w1a", "w1b", "w2a", "w2b", "t2", "alpha", "dora_scale")),
}
UNET_PREFIX = "lora_unet_"


class Patch:
    """One module's adapter from one file: its tensors (CPU, as stored) and how to turn them into dW."""

    def __init__(self, target: str, module: nn.Module, kind: str, tensors: Dict[str, torch.Tensor], alpha: Optional[float]):
        self.target = target
        self.module = module
        self.kind = kind
        self.tensors = tensors
        self.alpha = alpha
        self.is_unet = target.startswith(UNET_PREFIX)

    def _get(self, role: str, device: torch.device) -> Optional[torch.Tensor]:
        t = self.tensors.get(role)
        return None if t is None else t.to(device=device, dtype=torch.float32)

    def difference(self, shape: torch.Size, device: torch.device) -> Tuple[torch.Tensor, float]:
        """dW reshaped to ``shape`` (float32 on ``device``) and its scale (alpha / rank, or 1)."""
        g = lambda role: self._get(role, device)  # noqa: E731
        if self.kind == "lora":
            up, down, mid = g("up"), g("down"), g("mid")
            rank = down.shape[0]
            if mid is not None:
                final = [down.shape[1], down.shape[0], mid.shape[2], mid.shape[3]]
                down = torch.mm(down.transpose(0, 1).flatten(start_dim=1), mid.transpose(0, 1).flatten(start_dim=1)).reshape(final).transpose(0, 1)
            diff = torch.mm(up.flatten(start_dim=1), down.flatten(start_dim=1)).reshape(shape)
        elif self.kind == "loha":
            w1a, w1b, w2a, w2b, t1, t2 = g("w1a"), g("w1b"), g("w2a"), g("w2b"), g("t1"), g("t2")
            rank = w1b.shape[0]
            if t1 is not None:
                m1 = torch.einsum("i j k l, j r, i p -> p r k l", t1, w1b, w1a)
                m2 = torch.einsum("i j k l, j r, i p -> p r k l", t2, w2b, w2a)
            else:
                m1 = torch.mm(w1a, w1b)
                m2 = torch.mm(w2a, w2b)
            diff = (m1 * m2).reshape(shape)
        else:  # lokr
            w1, w2 = g("w1"), g("w2")
            rank = None
            if w1 is None:
                rank = self.tensors["w1b"].shape[0]
                w1 = torch.mm(g("w1a"), g("w1b"))
            if w2 is None:
                rank = self.tensors["w2b"].shape[0]
                t2 = g("t2")
                w2 = torch.mm(g("w2a"), g("w2b")) if t2 is None else torch.einsum("i j k l, j r, i p -> p r k l", t2, g("w2b"), g("w2a"))
            if w2.dim() == 4:
                w1 = w1.unsqueeze(2).unsqueeze(2)
            diff = torch.kron(w1.contiguous(), w2.contiguous()).reshape(shape)  # torch 1.13: kron of a non-contiguous (Tucker) factor cannot be reshaped
        scale = self.alpha / rank if self.alpha is not None and rank is not None else 1.0
        return diff, scale

    def add_to(self, weight: torch.Tensor, strength: float) -> torch.Tensor:
        """Adds this patch at ``strength`` to a float32 weight (in place when possible); returns it."""
        diff, scale = self.difference(weight.shape, weight.device)
        dora_scale = self._get("dora_scale", weight.device)
        if dora_scale is None:
            weight += (strength * scale) * diff
            return weight
        return _weight_decompose(dora_scale, weight, diff, scale, strength)


def _weight_decompose(dora_scale: torch.Tensor, weight: torch.Tensor, diff: torch.Tensor, scale: float, strength: float) -> torch.Tensor:
    """DoRA as ComfyUI applies it: the patched weight is renormalised per input column to dora_scale."""
    diff *= scale
    calc = weight + diff
    norm = calc.transpose(0, 1).reshape(calc.shape[1], -1).norm(dim=1, keepdim=True).reshape(calc.shape[1], *[1] * (calc.dim() - 1)).transpose(0, 1)
    calc *= dora_scale / norm
    if strength != 1.0:
        calc -= weight
        weight += strength * calc
    else:
        weight[:] = calc
    return weight


def _scalar(t: torch.Tensor, where: str) -> float:
    if t.numel() != 1:
        raise WorkerError("unsupported_model", f"{where} must hold one number, it has shape {list(t.shape)}")
    return float(t.float().item())


class LoraFile:
    """The patches of one LoRA file, checked against the model they are for."""

    def __init__(self, path: str, patches: List[Patch]):
        self.path = path
        self.patches = patches

    @classmethod
    def load(cls, sd: SD1, spec: Dict[str, Any], where: str = "lora") -> "LoraFile":
        path = spec.get("path")
        if not isinstance(path, str):
            raise bad_request(f"{where}.path must be a file path")
        if not os.path.isfile(path):
            raise WorkerError("io", f"{where}: LoRA file not found: {path}")
        modules = spec.get("modules")
        if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
            raise bad_request(f"{where}.modules must be a list of module objects")
        index = _module_index(sd)
        patches: List[Patch] = []
        used: set = set()
        seen_targets: set = set()
        with SafetensorsFile(path) as f:
            for i, m in enumerate(modules):
                at = f"{where}.modules[{i}]"
                target, kind, names = m.get("target"), m.get("kind"), m.get("tensors")
                if kind not in ROLES:
                    raise bad_request(f"{at}.kind must be one of {', '.join(ROLES)}, got {kind!r}")
                module = index.get(target) if isinstance(target, str) else None
                if module is None:
                    raise bad_request(f"{at}.target {target!r} is not a Linear/Conv2d module of this {sd.arch} model")
                if target in seen_targets:
                    raise bad_request(f"{at}.target {target} appears twice in one file")
                seen_targets.add(target)
                if not isinstance(names, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in names.items()):
                    raise bad_request(f"{at}.tensors must map roles to tensor names")
                required, optional = ROLES[kind]
                unknown_roles = sorted(set(names) - set(required) - set(optional))
                missing_roles = [r for r in required if r not in names]
                if unknown_roles or missing_roles:
                    raise bad_request(f"{at}: a {kind} module needs {', '.join(required) or 'w1/w2 factors'}; got roles {', '.join(sorted(names))}")
                tensors: Dict[str, torch.Tensor] = {}
                for role, name in names.items():
                    if name not in f.infos:
                        raise WorkerError("unsupported_model", f"{path}: no tensor {name!r} (role {role} of {target})")
                    tensors[role] = f.get(name).clone()
                    used.add(name)
                alpha = tensors.pop("alpha", None)
                patch = Patch(target, module, kind, tensors, None if alpha is None else _scalar(alpha, f"{path}: {names['alpha']}"))
                _check_shapes(patch, path)
                patches.append(patch)
            skip = spec.get("skip_keys", [])
            if not isinstance(skip, list) or not all(isinstance(k, str) for k in skip):
                raise bad_request(f"{where}.skip_keys must be a list of key names")
            unused = sorted(set(f.infos) - used - set(skip))
            if unused:
                raise WorkerError("unsupported_model", f"{path}: {len(unused)} keys are neither applied nor listed in skip_keys, e.g. {', '.join(unused[:5])}", "the file changed since it was checked, or it does not fit this model; run again")
        return cls(path, patches)


def _check_shapes(patch: Patch, path: str) -> None:
    """Works the difference out on the meta device (shapes only), so a misfit fails before any patching."""
    weight = patch.module.weight
    for factor in ("w1", "w2"):
        if patch.kind == "lokr" and factor not in patch.tensors and not (f"{factor}a" in patch.tensors and f"{factor}b" in patch.tensors):
            raise WorkerError("unsupported_model", f"{path}: LoKr module {patch.target} has neither lokr_{factor} nor lokr_{factor}_a/_b")
    shape = tuple(weight.shape)
    try:
        patch.difference(weight.shape, torch.device("meta"))
        dora = patch.tensors.get("dora_scale")
        norm = (1, shape[1]) + (1,) * (len(shape) - 2)
        if dora is not None and torch.broadcast_shapes(tuple(dora.shape), norm, shape) != shape:
            raise ValueError(f"dora_scale {list(dora.shape)} does not broadcast to the weight")
    except (RuntimeError, ValueError) as err:
        raise WorkerError(
            "unsupported_model",
            f"{path}: {patch.kind} module {patch.target} does not fit weight {list(shape)} ({err})",
            "the LoRA was made for a different base model architecture",
        ) from err


class WeightPatcher:
    """Patches a model's weights with a stack of LoRA files and puts the originals back on restore()."""

    def __init__(self, sd: SD1):
        self.sd = sd
        self._saved: Dict[nn.Module, torch.Tensor] = {}

    def apply(self, stack: Sequence[Tuple[LoraFile, float, float]]) -> int:
        """Patches every module the stack touches (restoring any earlier stack first); returns their count."""
        self.restore()
        per_module: Dict[nn.Module, List[Tuple[Patch, float]]] = {}
        for lora, strength_model, strength_clip in stack:
            for patch in lora.patches:
                strength = strength_model if patch.is_unet else strength_clip
                if strength != 0:
                    per_module.setdefault(patch.module, []).append((patch, float(strength)))
        with torch.no_grad():
            for module, patches in per_module.items():
                original = module.weight.detach()
                self._saved[module] = original.clone()
                weight = original.to(torch.float32, copy=True)
                for patch, strength in patches:
                    weight = patch.add_to(weight, strength)
                original.copy_(weight.to(original.dtype))
        return len(per_module)

    def restore(self) -> None:
        with torch.no_grad():
            for module, saved in self._saved.items():
                module.weight.detach().copy_(saved)
        self._saved = {}

    @property
    def patched(self) -> int:
        return len(self._saved)


class LoraFiles:
    """The ``lora_files`` of a request (id -> spec); each file is read and checked once, on first use."""

    def __init__(self, sd: SD1, specs: Any):
        if not isinstance(specs, dict) or not all(isinstance(v, dict) for v in specs.values()):
            raise bad_request("lora_files must map ids to LoRA file specs {path, modules, skip_keys}")
        self.sd = sd
        self.specs = specs
        self._loaded: Dict[str, LoraFile] = {}

    def __contains__(self, file_id: str) -> bool:
        return file_id in self.specs

    def get(self, file_id: str) -> LoraFile:
        if file_id not in self._loaded:
            self._loaded[file_id] = LoraFile.load(self.sd, self.specs[file_id], f"lora_files[{file_id!r}]")
        return self._loaded[file_id]

    def stack(self, entries: Iterable[Tuple[str, float, float]]) -> List[Tuple[LoraFile, float, float]]:
        return [(self.get(file_id), sm, sc) for file_id, sm, sc in entries]
