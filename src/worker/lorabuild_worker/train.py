"""LoRA training on cached latents and text contexts, with SimpleLoRA's recipe as options.

Epochs and steps as SimpleLoRA's accelerate loop has them: each epoch is a fresh permutation of the items
cut into micro-batches of ``batch_size`` (the last one may be smaller); an optimizer step takes
``gradient_accumulation`` micro-batches, except the last step of an epoch, which takes what is left
(accumulation restarts with every epoch). Each micro-batch's loss is divided by
``gradient_accumulation``, so a partial step has a proportionally smaller gradient, as there.

Per item: the cached flipped latent with probability 0.5 (``flip``); the posterior mean, or with
``latents: sample`` a posterior sample mean + 0.18215 * exp(logvar / 2) * N(0, 1) (what SimpleLoRA's
``latent_dist.sample()`` draws); a uniform timestep in 0..999; Gaussian noise (+ ``noise_offset`` x
per-channel noise); the empty-caption context with probability ``caption_dropout``. Epsilon prediction,
MSE (optionally min-SNR-gamma weighted); the global gradient norm clipped to ``max_grad_norm``; AdamW
(0.9, 0.999, weight decay 1e-2); constant or cosine learning rate with linear warmup, evaluated as
diffusers' schedulers are (at the number of steps already taken).

Determinism: all randomness of step s comes from generators seeded with (seed, s), and the order of
items from a per-epoch permutation seeded with (seed, epoch). So a run resumed from a saved state (LoRA
weights, AdamW moments, step, loss curve: one safetensors file, JSON in its metadata, no pickle) is
bit-identical on CPU to an uninterrupted run, and so is a constant-schedule run extended to more steps.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from . import ddp
from .checkpoint import SD1
from .models import get_sd1
from .errors import WorkerError, bad_request
from .lora import INITS, LoRANetwork, inject_lora, save_lora
from .safetensors_io import SafetensorsFile, load_file, save_file

STATE_FORMAT = "lorabuild.train-state.v1"
OOM_HINT = "lower batch_size to 1, set gradient_checkpointing: on, or lower the resolution"
# params that must match between a saved state and the run resuming from it
RESUME_KEYS = ("rank", "alpha", "learning_rate", "batch_size", "seed", "targets", "lr_scheduler", "warmup_steps",
               "gradient_accumulation", "min_snr_gamma", "noise_offset", "caption_dropout", "flip", "max_grad_norm",
               "latents", "lora_init")


@dataclass(frozen=True)
class TrainParams:
    rank: int = 4
    alpha: Optional[float] = None
    learning_rate: float = 1e-4
    batch_size: int = 1
    seed: int = 0
    resolution: int = 512
    targets: str = "attention"
    lr_scheduler: str = "constant"
    warmup_steps: int = 0
    gradient_accumulation: int = 1
    clip_skip: int = 1
    min_snr_gamma: Optional[float] = None
    noise_offset: float = 0.0
    caption_dropout: float = 0.0
    flip: bool = True
    max_grad_norm: float = 1.0
    latents: str = "mean"
    lora_init: str = "kaiming"
    mixed_precision: str = "auto"
    gradient_checkpointing: str = "auto"
    compile: bool = False
    device: str = "auto"
    devices: int = 1

    @property
    def effective_alpha(self) -> float:
        return float(self.alpha if self.alpha is not None else self.rank)


_CHOICES = {
    "targets": ("attention", "attention+proj", "all-linear"),
    "lr_scheduler": ("constant", "cosine"),
    "latents": ("mean", "sample"),
    "lora_init": INITS,
    "mixed_precision": ("auto", "no", "fp16", "bf16"),
    "gradient_checkpointing": ("auto", "on", "off"),
    "device": ("auto", "cpu", "cuda"),
}


def parse_params(raw: Any) -> TrainParams:
    """Check the LoraSpec fields the worker uses; unknown fields (model, dataset, publish...) are ignored."""
    if not isinstance(raw, dict):
        raise bad_request("train: params must be an object of LoraSpec fields")
    defaults = TrainParams()
    values: Dict[str, Any] = {}
    for name, default in asdict(defaults).items():
        value = raw.get(name, default)
        if value is None and name in ("alpha", "min_snr_gamma"):
            values[name] = None
            continue
        if name in _CHOICES:
            if value not in _CHOICES[name]:
                raise bad_request(f"train: params.{name} is {value!r}; choose one of {', '.join(_CHOICES[name])}")
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise bad_request(f"train: params.{name} must be true or false, got {value!r}")
        elif name in ("alpha", "min_snr_gamma", "learning_rate", "noise_offset", "caption_dropout", "max_grad_norm"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise bad_request(f"train: params.{name} must be a non-negative number, got {value!r}")
            value = float(value)
        else:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad_request(f"train: params.{name} must be a non-negative integer, got {value!r}")
        values[name] = value
    for name in ("rank", "batch_size", "gradient_accumulation", "clip_skip", "resolution", "devices"):
        if values[name] < 1:
            raise bad_request(f"train: params.{name} must be at least 1, got {values[name]}")
    if values["batch_size"] % values["devices"]:
        raise bad_request(f"train: batch_size {values['batch_size']} does not split over devices: {values['devices']}", "make batch_size a multiple of devices (the global batch is split evenly)")
    if values["caption_dropout"] > 1:
        raise bad_request(f"train: params.caption_dropout must be between 0 and 1, got {values['caption_dropout']}")
    return TrainParams(**values)


def _seed_for(seed: int, stream: int, index: int) -> int:
    # distinct streams (step noise, epoch order) never share a generator seed
    return (seed * 2_654_435_761 + stream * 1_000_000_007 + index) % (2**62)


def learning_rate(params: TrainParams, step: int, total_steps: int) -> float:
    """LR used by optimizer step ``step`` (1-based). Like diffusers' get_scheduler under SimpleLoRA, the
    schedule is a function of the steps already taken: warmup ramps linearly from 0, and a cosine schedule
    gives its first step the full rate and its last a small positive one."""
    base, taken, warmup = params.learning_rate, step - 1, params.warmup_steps
    if taken < warmup:
        return base * taken / warmup
    if params.lr_scheduler == "cosine":
        progress = (taken - warmup) / max(1, total_steps - warmup)
        return base * max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    return base


class Dataset:
    """Cached latents (both flip states, their log-variances when sampling) and contexts, stacked once."""

    def __init__(
        self,
        latents: torch.Tensor,
        flipped: torch.Tensor,
        contexts: torch.Tensor,
        empty: Optional[torch.Tensor] = None,
        logvar: Optional[torch.Tensor] = None,
        logvar_flipped: Optional[torch.Tensor] = None,
    ):
        self.latents = latents.float()
        self.flipped = flipped.float()
        self.contexts = contexts.float()
        self.empty = None if empty is None else empty.float()
        self.logvar = None if logvar is None else logvar.float()
        self.logvar_flipped = None if logvar_flipped is None else logvar_flipped.float()

    @classmethod
    def from_tensors(cls, latents: torch.Tensor, flipped: torch.Tensor, contexts: torch.Tensor) -> "Dataset":
        return cls(latents, flipped, contexts)

    @classmethod
    def from_items(cls, items: List[Dict[str, str]], empty_context: Optional[str], with_logvar: bool = False) -> "Dataset":
        if not isinstance(items, list) or not items:
            raise bad_request("train: items is empty; the dataset has nothing to train on")
        names = ("latent", "latent_flipped") + (("logvar", "logvar_flipped") if with_logvar else ())
        stacks: Dict[str, List[torch.Tensor]] = {n: [] for n in names}
        contexts = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("latents"), str) or not isinstance(item.get("context"), str):
                raise bad_request(f"train: items[{i}] must be {{latents: path, context: path}}")
            lat = _read_tensors(item["latents"], names)
            for n in names:
                stacks[n].append(lat[n])
            contexts.append(_read_tensors(item["context"], ("context",))["context"])
        for what, group in (("latent", [t for n in names for t in stacks[n]]), ("context", contexts)):
            shapes = {tuple(t.shape) for t in group}
            if len(shapes) != 1:
                raise bad_request(f"train: items have {what}s of different shapes {sorted(shapes)[:3]}; encode all items at one resolution")
        empty = None
        if empty_context is not None:
            empty = _read_tensors(empty_context, ("context",))["context"]
            if empty.shape != contexts[0].shape:
                raise bad_request(f"train: empty_context {list(empty.shape)} does not match item contexts {list(contexts[0].shape)}")
        stacked = {n: torch.stack(stacks[n]) for n in names}
        return cls(stacked["latent"], stacked["latent_flipped"], torch.stack(contexts), empty, stacked.get("logvar"), stacked.get("logvar_flipped"))

    def __len__(self) -> int:
        return self.latents.shape[0]


def _read_tensors(path: str, names: Tuple[str, ...]) -> Dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise WorkerError("io", f"train: cached tensor file not found: {path}", "re-run the encode step (lorabuild run rebuilds missing cache entries)")
    with SafetensorsFile(path) as f:
        missing = [n for n in names if n not in f.infos]
        if missing:
            raise WorkerError("io", f"{path}: no tensor named {', '.join(missing)}")
        return {n: f.get(n).clone() for n in names}


class Sampler:
    """Which items, flips, timesteps, noise and caption dropouts the micro-batches of step s use.

    An epoch is a permutation of the items cut into micro-batches of batch_size (the last may be short);
    an optimizer step takes gradient_accumulation of them, the last step of an epoch what is left."""

    def __init__(self, params: TrainParams, data: Dataset, latent_scale: float = 1.0):
        self.params = params
        self.data = data
        self.size = len(data)
        self.latent_scale = latent_scale
        self.micro_per_epoch = math.ceil(self.size / params.batch_size)
        self.steps_per_epoch = math.ceil(self.micro_per_epoch / params.gradient_accumulation)
        self._orders: Dict[int, torch.Tensor] = {}
        if params.latents == "sample" and data.logvar is None:
            raise bad_request("train: latents: sample needs the cached log-variances (logvar)")

    def _order(self, epoch: int) -> torch.Tensor:
        if epoch not in self._orders:
            gen = torch.Generator().manual_seed(_seed_for(self.params.seed, 2, epoch))
            self._orders = {epoch: torch.randperm(self.size, generator=gen)}
        return self._orders[epoch]

    def micro_batch_items(self, step: int) -> List[torch.Tensor]:
        """Item indices of each micro-batch of optimizer step ``step`` (1-based)."""
        p = self.params
        epoch, within = divmod(step - 1, self.steps_per_epoch)
        order = self._order(epoch)
        first = within * p.gradient_accumulation
        last = min(first + p.gradient_accumulation, self.micro_per_epoch)
        return [order[m * p.batch_size : min((m + 1) * p.batch_size, self.size)] for m in range(first, last)]

    def micro_batches(self, step: int):
        p, data = self.params, self.data
        latent_shape = tuple(data.latents.shape[1:])
        gen = torch.Generator().manual_seed(_seed_for(p.seed, 1, step))
        posterior = torch.Generator().manual_seed(_seed_for(p.seed, 3, step))
        for idx in self.micro_batch_items(step):
            n = len(idx)
            flip = torch.rand(n, generator=gen) < 0.5
            timesteps = torch.randint(0, 1000, (n,), generator=gen)
            noise = torch.randn((n,) + latent_shape, generator=gen)
            offset = torch.randn((n, latent_shape[0], 1, 1), generator=gen)
            drop = torch.rand(n, generator=gen) < p.caption_dropout
            flipped = (flip & p.flip)[:, None, None, None]
            latents = torch.where(flipped, data.flipped[idx], data.latents[idx])
            if p.latents == "sample":
                logvar = torch.where(flipped, data.logvar_flipped[idx], data.logvar[idx])  # type: ignore[index]
                latents = latents + self.latent_scale * torch.exp(0.5 * logvar) * torch.randn((n,) + latent_shape, generator=posterior)
            if p.noise_offset:
                noise = noise + p.noise_offset * offset
            context = data.contexts[idx]
            if p.caption_dropout and data.empty is not None:
                context = torch.where(drop[:, None, None], data.empty[None], context)
            yield latents, noise, timesteps, context


@dataclass
class Precision:
    device: torch.device
    autocast_dtype: Optional[torch.dtype]
    model_dtype: torch.dtype
    scaler: Any


def choose_precision(params: TrainParams) -> Precision:
    want_cuda = params.device == "cuda" or (params.device == "auto" and torch.cuda.is_available())
    if params.device == "cuda" and not torch.cuda.is_available():
        raise bad_request("train: device is cuda but torch sees no CUDA GPU", "set device: auto or cpu, or install a CUDA build of torch")
    if not want_cuda:
        return Precision(torch.device("cpu"), None, torch.float32, None)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    mode = params.mixed_precision
    if mode == "auto":
        mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if mode == "no":
        return Precision(torch.device("cuda"), None, torch.float32, None)
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    scaler = None
    if dtype == torch.float16:  # fp16 needs loss scaling; bf16 has fp32's range
        amp = getattr(torch, "amp", None)
        scaler = amp.GradScaler("cuda") if amp is not None and hasattr(amp, "GradScaler") else torch.cuda.amp.GradScaler()
    return Precision(torch.device("cuda"), dtype, dtype, scaler)


def _is_oom(exc: BaseException) -> bool:
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom_type is not None and isinstance(exc, oom_type)) or "out of memory" in str(exc).lower()


def _optimizer_tensors(net: LoRANetwork, opt: torch.optim.Optimizer) -> Tuple[Dict[str, torch.Tensor], Dict[str, float]]:
    tensors: Dict[str, torch.Tensor] = {}
    steps: Dict[str, float] = {}
    for name, param in net.named_parameters():
        state = opt.state.get(param)
        if not state:
            continue
        tensors[f"optim.{name}.exp_avg"] = state["exp_avg"].detach().float().cpu().contiguous()
        tensors[f"optim.{name}.exp_avg_sq"] = state["exp_avg_sq"].detach().float().cpu().contiguous()
        steps[name] = float(state["step"])
    return tensors, steps


def _restore_optimizer(net: LoRANetwork, opt: torch.optim.Optimizer, tensors: Dict[str, torch.Tensor], steps: Dict[str, float]) -> None:
    for name, param in net.named_parameters():
        if name not in steps:
            continue
        opt.state[param] = {
            "step": torch.tensor(steps[name], dtype=torch.float32),
            "exp_avg": tensors[f"optim.{name}.exp_avg"].to(param.device).clone(),
            "exp_avg_sq": tensors[f"optim.{name}.exp_avg_sq"].to(param.device).clone(),
        }


class Trainer:
    def __init__(self, sd: SD1, data: Dataset, params: TrainParams, steps: int, precision: Precision, init_lora: Optional[str] = None):
        self.sd, self.data, self.params, self.steps, self.precision = sd, data, params, steps, precision
        self.sampler = Sampler(params, data, sd.config.vae.scale_factor)  # checks the data before any hook is attached
        self.group = ddp.current()
        self.net = inject_lora(sd, params.targets, params.rank, params.effective_alpha, params.seed, device=precision.device, init=params.lora_init)
        if init_lora:
            try:
                self.net.load_state_tensors(load_file(init_lora))
            except BaseException:
                self.net.remove()
                raise
        self.optimizer = torch.optim.AdamW(list(self.net.parameters()), lr=params.learning_rate, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
        self.step = 0
        self.loss_curve: List[List[float]] = []
        self.alphas = sd.alphas_cumprod.to(precision.device).float()
        self.unet_forward: Callable = sd.unet_model
        # settings that could not take effect ({setting, message}): said in the log and the report
        self.warnings: List[Dict[str, str]] = []
        if params.compile:
            if hasattr(torch, "compile"):
                self.unet_forward = torch.compile(sd.unet_model)
            else:
                message = f"compile: true has no effect: torch {torch.__version__} has no torch.compile (it came with torch 2.0); trained without compiling"
                self.warnings.append({"setting": "compile", "message": message})
        if self.group is not None:
            self.unet_forward = self.group.wrap(sd.unet_model, self.net, precision.device)

    def train_step(self) -> float:
        step = self.step + 1
        p, dev = self.params, self.precision.device
        lr = learning_rate(p, step, self.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.sd.unet_model.train()
        total = 0.0
        batches = list(self.sampler.micro_batches(step))
        for micro, whole in enumerate(batches):
            n, batch, weight = whole[0].shape[0], whole, 1.0
            if self.group is not None:  # every rank drew the whole micro-batch; each trains on its slice
                batch = tuple(self.group.shard(t) for t in whole)
                if batch[0].shape[0] == 0:  # fewer items than processes: one item at weight 0 still reaches the all-reduce
                    batch, weight = tuple(t[:1] for t in whole), 0.0
            latents, noise, timesteps, context = (t.to(dev) for t in batch)
            a = self.alphas[timesteps][:, None, None, None]
            noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
            with self._autocast():
                pred = self.unet_forward(noisy.to(self.precision.model_dtype), timesteps, context.to(self.precision.model_dtype))
            per_item = F.mse_loss(pred.float(), noise, reduction="none").mean(dim=(1, 2, 3))
            if p.min_snr_gamma:
                snr = a.flatten() / (1 - a.flatten())
                per_item = per_item * torch.clamp(snr, max=p.min_snr_gamma) / snr
            # the micro-batch's mean; under DDP a rank holds a slice (sizes may differ by one) and DDP
            # averages the ranks' gradients, so each rank weighs its sum by world / n
            loss = per_item.mean() if self.group is None else per_item.sum() * (weight * self.group.world / n)
            if not torch.isfinite(loss) and self.group is None:  # (ranks must reach every backward together)
                return float("nan")
            scaled = loss / p.gradient_accumulation
            # DDP averages the gradients once per optimizer step, on the last micro-batch
            sync = self.group is None or micro == len(batches) - 1
            with contextlib.nullcontext() if sync else self.unet_forward.no_sync():
                if self.precision.scaler is not None:
                    self.precision.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
            total += float(loss.detach())
        if p.max_grad_norm > 0:
            if self.precision.scaler is not None:
                self.precision.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(list(self.net.parameters()), p.max_grad_norm)
        if self.precision.scaler is not None:
            self.precision.scaler.step(self.optimizer)
            self.precision.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step = step
        mean = total / len(batches)
        if self.group is not None:
            mean = self.group.mean(mean)
        self.loss_curve.append([step, mean])
        return mean

    def _autocast(self):
        if self.precision.autocast_dtype is None:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cuda", dtype=self.precision.autocast_dtype)

    # -- state files ---------------------------------------------------------------------------------
    def save_state(self, path: str) -> None:
        tensors = {f"lora.{k}": v for k, v in self.net.state_tensors().items()}
        optim, counts = _optimizer_tensors(self.net, self.optimizer)
        tensors.update(optim)
        info = {
            "format": STATE_FORMAT,
            "step": self.step,
            "steps": self.steps,
            "params": {k: getattr(self.params, k) for k in RESUME_KEYS},
            "optimizer_steps": counts,
            "loss_curve": self.loss_curve,
        }
        save_file(tensors, path, {"lorabuild.state": json.dumps(info, sort_keys=True)})

    def load_state(self, path: str) -> None:
        if not os.path.isfile(path):
            raise WorkerError("io", f"train: resume state not found: {path}")
        with SafetensorsFile(path) as f:
            raw = f.metadata.get("lorabuild.state")
            tensors = {k: f.get(k).clone() for k in f.keys()}
        try:
            info = json.loads(raw or "")
        except json.JSONDecodeError:
            info = None
        if not isinstance(info, dict) or info.get("format") != STATE_FORMAT:
            raise bad_request(f"train: {path} is not a lorabuild training state")
        mine = {k: getattr(self.params, k) for k in RESUME_KEYS}
        changed = [k for k in RESUME_KEYS if info["params"].get(k) != mine[k]]
        if changed:
            saved = info["params"]
            diff = ", ".join(f"{k} {saved.get(k)!r} -> {mine[k]!r}" for k in changed)
            raise bad_request(f"train: cannot resume from {path}: {diff}", "train from scratch")
        if info["step"] > self.steps:
            raise bad_request(f"train: the state is at step {info['step']}, beyond steps {self.steps}")
        if self.params.lr_scheduler == "cosine" and info["steps"] != self.steps:
            raise bad_request(f"train: a cosine schedule over {info['steps']} steps cannot be extended to {self.steps}; the earlier steps would differ", "train from scratch or use lr_scheduler: constant")
        self.net.load_state_tensors({k[len("lora."):]: v for k, v in tensors.items() if k.startswith("lora.")})
        _restore_optimizer(self.net, self.optimizer, tensors, {k: float(v) for k, v in info["optimizer_steps"].items()})
        self.step = int(info["step"])
        self.loss_curve = [[int(s), float(l)] for s, l in info["loss_curve"]]


def lora_metadata(params: TrainParams, steps: int, step: int, resolution: Tuple[int, int], given: Dict[str, str]) -> Dict[str, str]:
    """ss_* (kohya) and modelspec metadata. Values passed by the TypeScript side (dataset hash, tag
    frequency, model hash, output name ...) win over the defaults computed here."""
    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(params.rank),
        "ss_network_alpha": repr(params.effective_alpha),
        "ss_network_args": json.dumps({"targets": params.targets}),
        "ss_base_model_version": "sd_v1",
        "ss_v2": "False",
        "ss_learning_rate": repr(params.learning_rate),
        "ss_unet_lr": repr(params.learning_rate),
        "ss_text_encoder_lr": "0.0",
        "ss_max_train_steps": str(steps),
        "ss_steps": str(step),
        "ss_seed": str(params.seed),
        "ss_resolution": f"({resolution[1]}, {resolution[0]})",
        "ss_batch_size_per_device": str(params.batch_size),
        "ss_gradient_accumulation_steps": str(params.gradient_accumulation),
        "ss_lr_scheduler": params.lr_scheduler,
        "ss_lr_warmup_steps": str(params.warmup_steps),
        "ss_clip_skip": str(params.clip_skip),
        "ss_min_snr_gamma": "None" if params.min_snr_gamma is None else repr(params.min_snr_gamma),
        "ss_noise_offset": repr(params.noise_offset),
        "ss_caption_dropout_rate": repr(params.caption_dropout),
        "ss_max_grad_norm": repr(params.max_grad_norm),
        "ss_flip_aug": str(params.flip),
        "ss_optimizer": "torch.optim.AdamW(weight_decay=0.01,betas=(0.9, 0.999))",
        "ss_mixed_precision": params.mixed_precision,
        "ss_training_comment": "trained with lorabuild",
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.implementation": "diffusers",
        "modelspec.resolution": f"{resolution[1]}x{resolution[0]}",
        "modelspec.prediction_type": "epsilon",
    }
    meta["modelspec.title"] = given.get("ss_output_name", "lorabuild LoRA")
    meta.update(given)
    return meta


def run_training(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    """The ``train`` op (see src/worker/protocol.ts for args and results)."""
    for name in ("model", "out_dir"):
        if not isinstance(args.get(name), str):
            raise bad_request(f"train: args.{name} must be an absolute path string")
    steps, every = args.get("steps"), args.get("checkpoint_every")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise bad_request(f"train: args.steps must be a positive integer, got {steps!r}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise bad_request(f"train: args.checkpoint_every must be a positive integer, got {every!r}")
    given = args.get("metadata") or {}
    if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
        raise bad_request("train: args.metadata must be an object of string -> string")
    params = parse_params(args.get("params"))
    if params.caption_dropout > 0 and not isinstance(args.get("empty_context"), str):
        raise bad_request("train: caption_dropout > 0 needs args.empty_context (the encoded empty caption)")
    if params.devices > 1 and ddp.current() is None:
        return ddp.launch(args, ctx, params.devices)
    precision = choose_precision(params)
    out_dir = args["out_dir"]
    os.makedirs(out_dir, exist_ok=True)
    state_path = os.path.join(out_dir, "state.safetensors")

    data = Dataset.from_items(args.get("items") or [], args.get("empty_context") if params.caption_dropout > 0 else None, with_logvar=params.latents == "sample")
    sd = get_sd1(args["model"], precision.device, precision.model_dtype, bool(args.get("allow_pickle", False)), args.get("arch"))
    if data.contexts.shape[-1] != sd.config.unet.context_dim:
        raise bad_request(f"train: contexts have width {data.contexts.shape[-1]} but the {sd.arch} UNet wants {sd.config.unet.context_dim}; re-encode the captions with this model")
    ckpt_mode = params.gradient_checkpointing
    if ckpt_mode == "auto":
        ckpt_mode = "on" if precision.device.type == "cuda" and torch.cuda.get_device_properties(0).total_memory <= 8.5 * 2**30 else "off"
    sd.unet_model.gradient_checkpointing = ckpt_mode == "on"

    trainer = Trainer(sd, data, params, steps, precision, args.get("init_lora"))
    for warning in trainer.warnings:
        ctx.log(f"warning: {warning['message']}")
    try:
        return _train_loop(trainer, args, ctx, steps, every, given, state_path)
    finally:
        trainer.net.remove()  # the cached model goes back to its base state
        sd.unet_model.gradient_checkpointing = False
        sd.unet_model.eval()


def _train_loop(trainer: "Trainer", args: Dict[str, Any], ctx: Any, steps: int, every: int, given: Dict[str, str], state_path: str) -> Dict[str, Any]:
    params, precision, data, out_dir = trainer.params, trainer.precision, trainer.data, args["out_dir"]
    if args.get("resume"):
        trainer.load_state(args["resume"])
        ctx.log(f"resumed from step {trainer.step}")
    latent_hw = tuple(data.latents.shape[-2:])
    resolution = (latent_hw[0] * 8, latent_hw[1] * 8)
    last_good: Optional[str] = None

    writer = trainer.group is None or trainer.group.writer  # under DDP only rank 0 writes

    def write_lora(step: int, path: str) -> None:
        if writer:
            save_lora(trainer.net, path, lora_metadata(params, steps, step, resolution, given))

    def save_state() -> None:
        if writer:
            trainer.save_state(state_path)

    if precision.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started, last_report = time.perf_counter(), 0.0
    first_step = trainer.step
    try:
        while trainer.step < steps:
            loss = trainer.train_step()
            if not math.isfinite(loss):
                where = f"; the last good checkpoint is {last_good}" if last_good else ""
                raise WorkerError("nan_loss", f"train: the loss became NaN/inf at step {trainer.step + 1}{where}", "lower learning_rate, use mixed_precision: bf16 or no, or check the dataset")
            step = trainer.step
            now = time.perf_counter()
            its = (step - first_step) / max(now - started, 1e-9)
            if now - last_report >= 0.25 or step == steps or step % every == 0 or step == first_step + 1:
                ctx.progress(step, steps, loss=loss, its=round(its, 3))
                last_report = now
            if step % every == 0 or step == steps:
                path = os.path.join(out_dir, f"lora-step{step}.safetensors")
                write_lora(step, path)
                save_state()
                last_good = path
                ctx.checkpoint(step, path)
            if step < steps and ctx.cancelled():
                save_state()
                raise WorkerError("cancelled", f"train: cancelled after step {step}; resumable state in {state_path}")
    except RuntimeError as exc:
        if _is_oom(exc):
            raise WorkerError("oom", f"train: CUDA out of memory at batch_size {params.batch_size}, resolution {resolution[0]}", OOM_HINT) from exc
        raise
    final = os.path.join(out_dir, "lora.safetensors")
    write_lora(steps, final)
    peak = torch.cuda.max_memory_allocated() if precision.device.type == "cuda" else _cpu_peak_rss()
    return {"final": final, "state": state_path, "loss_curve": trainer.loss_curve, "peak_memory": peak, "device": precision.device.type, "warnings": trainer.warnings}


def _cpu_peak_rss() -> int:
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except (ImportError, OSError):
        return 0
