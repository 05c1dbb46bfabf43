"""Load SD1.x checkpoints (LDM single files by their own key names, diffusers folders through
diffusers_layout.py under the same names), and build the random ``builtin`` models.

    sd = load_sd1(path, device="cpu", dtype=torch.float32)     # raises WorkerError on refusal
    eps = sd.unet(noisy_latents, timesteps, context)            # [B,4,h,w], timesteps [B] in 0..999
    lat = sd.encode_images(pixels)                              # pixels [B,3,H,W] in [-1,1] -> latents x 0.18215
    mean, logvar = sd.encode_posterior(pixels)                  # scaled mean (as above) + the posterior's log-variance
    img = sd.decode_latents(lat)                                # scaled latents -> images [B,3,H,W] in [0,1]
    ctx = sd.encode_text(ids, clip_skip=1)                      # LongTensor [B,77] -> [B,77,context_dim]
    sd.alphas_cumprod                                           # float32 [1000], DDPM scaled-linear schedule
    sd.arch ('sd15' | 'tiny' | 'toy'), sd.config (configs.SD1Config), sd.device, sd.dtype

    report = inspect(path)                                      # family/arch/dtype/missing/unexpected, no weights read
    build_builtin("tiny", seed, path)                           # deterministic from the seed; LDM layout

Refusals are ``WorkerError``s: code ``unsupported_model`` for SDXL, SD2, LoRA files given as a model
and files that are not Stable Diffusion; code ``pickle_refused`` for .ckpt/.pt unless allow_pickle.
All parameters are frozen (requires_grad False); LoRA layers add the trainable ones (see lora.py).
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn

from .configs import BETA_END, BETA_START, CONFIGS, TRAIN_TIMESTEPS, SD1Config
from .diffusers_layout import DiffusersSource, is_diffusers_folder
from .errors import WorkerError
from .nn.clip import CLIPTextModel
from .nn.layers import build_device
from .nn.unet import UNet
from .nn.vae import AutoencoderKL
from .safetensors_io import DTYPES, SafetensorsFile, save_file

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."

TINY_LATENT_GAIN = 32.0
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")

# Keys a single file may carry that a model does not need.
IGNORED_PREFIXES = ("model_ema.",)
IGNORED_KEYS = frozenset(
    [
        TEXT_PREFIX + "text_model.embeddings.position_ids",
        TEXT_PREFIX + "embeddings.position_ids",
        "alphas_cumprod",
        "alphas_cumprod_prev",
        "betas",
        "log_one_minus_alphas_cumprod",
        "posterior_log_variance_clipped",
        "posterior_mean_coef1",
        "posterior_mean_coef2",
        "posterior_variance",
        "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod",
        "sqrt_recipm1_alphas_cumprod",
        "logvar",
    ]
)

PICKLE_HINT = "convert the file to .safetensors, or set allow_pickle: true on the model in lorafile.yaml if you trust its source (loading a pickle runs code from the file)"


def ddpm_alphas_cumprod() -> torch.Tensor:
    """SD1's training schedule: betas linear in sqrt space from 0.00085 to 0.012 over 1000 steps."""
    betas = torch.linspace(BETA_START**0.5, BETA_END**0.5, TRAIN_TIMESTEPS, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float32)


def _build_modules(config: SD1Config, device: Optional[str]) -> Tuple[UNet, AutoencoderKL, CLIPTextModel]:
    with build_device(device):
        return UNet(config.unet), AutoencoderKL(config.vae), CLIPTextModel(config.text)


def _ldm_names(unet: nn.Module, vae: nn.Module, text: nn.Module) -> Iterator[Tuple[str, torch.Tensor]]:
    for prefix, module in ((UNET_PREFIX, unet), (VAE_PREFIX, vae), (TEXT_PREFIX, text)):
        for name, tensor in module.state_dict(keep_vars=True).items():
            yield prefix + name, tensor


def expected_keys(config: SD1Config) -> Dict[str, Tuple[int, ...]]:
    """LDM key -> shape for a config, computed on the meta device (no memory, no init)."""
    return {k: tuple(t.shape) for k, t in _ldm_names(*_build_modules(config, "meta"))}


def empty_sd1(arch: str, device: str | torch.device = "meta", dtype: torch.dtype = torch.float32) -> "SD1":
    """An SD1 of ``arch`` with uninitialised weights (on 'meta': no memory at all). For key/shape checks,
    LoRA layout checks and benchmarks; never for real images."""
    unet, vae, text = _build_modules(CONFIGS[arch], "meta")
    target = torch.device(device)
    if target.type != "meta":
        unet, vae, text = (m.to(dtype).to_empty(device=target) for m in (unet, vae, text))
    return SD1(CONFIGS[arch], unet, vae, text, target, dtype)


class SD1:
    """A loaded SD1.x model: UNet, VAE and text encoder, frozen, on one device and dtype."""

    def __init__(self, config: SD1Config, unet: UNet, vae: AutoencoderKL, text: CLIPTextModel, device: torch.device, dtype: torch.dtype):
        self.config = config
        self.arch = config.name
        self.unet_model = unet
        self.vae = vae
        self.text_encoder = text
        self.device = device
        self.dtype = dtype
        self.alphas_cumprod = ddpm_alphas_cumprod().to(device)
        for module in (unet, vae, text):
            module.requires_grad_(False)
            module.eval()

    def unet(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.unet_model(x, timesteps, context)

    def encode_posterior(self, pixels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """pixels -> (scaled posterior mean, unscaled log-variance). A posterior sample is
        ``mean + scale_factor * exp(logvar / 2) * noise``: what SimpleLoRA draws each step."""
        mean, logvar = self.vae.encode_moments(pixels.to(self.device, self.dtype))
        return mean * self.config.vae.scale_factor, logvar

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.encode_posterior(pixels)[0]

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        pixels = self.vae.decode(latents.to(self.device, self.dtype) / self.config.vae.scale_factor)
        return ((pixels.float() + 1.0) / 2.0).clamp(0.0, 1.0)

    def encode_text(self, ids: torch.Tensor, clip_skip: int = 1) -> torch.Tensor:
        return self.text_encoder(ids.to(self.device), clip_skip)

    def modules(self) -> Dict[str, nn.Module]:
        return {"unet": self.unet_model, "vae": self.vae, "text": self.text_encoder}


@dataclass
class CheckpointReport:
    family: str  # 'sd1' | 'sd2' | 'sdxl' | 'lora' | 'unknown'
    arch: Optional[str]  # 'sd15' | 'tiny' | 'toy' | None
    dtype: Optional[str]
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)  # "key: file [a,b] vs model [c,d]"
    metadata: Dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"family": self.family, "arch": self.arch, "dtype": self.dtype, "missing": self.missing, "unexpected": self.unexpected, "mismatched": self.mismatched}


class _TensorSource:
    """What the loader needs from a checkpoint: names, shapes, dtype names, tensors, metadata."""

    def __init__(self, shapes: Dict[str, Tuple[int, ...]], dtypes: Dict[str, str], metadata: Dict[str, str], getter):
        self.shapes = shapes
        self.dtypes = dtypes
        self.metadata = metadata
        self.get = getter


def _looks_pickled(path: str) -> bool:
    if path.lower().endswith(PICKLE_SUFFIXES):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError:
        return False
    if head[8:9] == b"{":  # a safetensors header (its JSON starts right after the 8-byte length)
        return False
    # torch.save zip archive, or a raw pickle (PROTO opcode 0x80 + protocol 2..5)
    return head.startswith(b"PK\x03\x04") or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))


def _open_source(path: str, allow_pickle: bool, prefer_half: bool = False) -> Tuple[_TensorSource, Optional[SafetensorsFile]]:
    if is_diffusers_folder(path):
        folder = DiffusersSource(path, allow_pickle, prefer_half)
        return folder, folder  # type: ignore[return-value]
    if not os.path.isfile(path):
        raise WorkerError("io", f"model file not found: {path}", "check the checkpoint path in lorafile.yaml")
    if _looks_pickled(path):
        if not allow_pickle:
            raise WorkerError("pickle_refused", f"{path} is a pickled checkpoint; lorabuild does not unpickle files by default", PICKLE_HINT)
        obj = torch.load(path, map_location="cpu")
        state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
        if not isinstance(state, dict):
            raise WorkerError("unsupported_model", f"{path}: the pickle holds no state_dict of tensors")
        tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        names = {v: k for k, (v, _) in DTYPES.items()}
        return _TensorSource({k: tuple(v.shape) for k, v in tensors.items()}, {k: names.get(v.dtype, str(v.dtype)) for k, v in tensors.items()}, {}, tensors.__getitem__), None
    f = SafetensorsFile(path)
    return _TensorSource({k: i.shape for k, i in f.infos.items()}, {k: i.dtype for k, i in f.infos.items()}, f.metadata, f.get), f


def _text_key(key: str) -> str:
    """Map the older alias (no '.text_model') to the canonical key."""
    if key.startswith(TEXT_PREFIX) and not key.startswith(TEXT_PREFIX + "text_model."):
        return TEXT_PREFIX + "text_model." + key[len(TEXT_PREFIX) :]
    return key


def _family(shapes: Dict[str, Tuple[int, ...]], metadata: Dict[str, str]) -> str:
    keys = shapes.keys()
    arch_meta = metadata.get("modelspec.architecture", "")
    if any(k.startswith(("lora_unet_", "lora_te_", "lora_te1_")) or ".lora_down." in k or ".lora_A." in k or ".lora_up." in k for k in keys):
        return "lora"
    if arch_meta.startswith("stable-diffusion-xl") or any(k.startswith("conditioner.embedders.") for k in keys) or UNET_PREFIX + "label_emb.0.0.weight" in shapes:
        return "sdxl"
    if UNET_PREFIX + "input_blocks.0.0.weight" not in shapes:
        return "unknown"
    to_k = shapes.get(UNET_PREFIX + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight")
    if arch_meta.startswith("stable-diffusion-v2") or any(k.startswith("cond_stage_model.model.") for k in keys) or (to_k is not None and to_k[1] == 1024):
        return "sd2"
    return "sd1"


def _arch(shapes: Dict[str, Tuple[int, ...]], metadata: Dict[str, str]) -> Optional[str]:
    declared = metadata.get("lorabuild.arch")
    if declared in CONFIGS:
        return declared
    width = shapes.get(UNET_PREFIX + "input_blocks.0.0.weight", (0,))[0]
    for name, config in CONFIGS.items():
        if config.unet.model_channels == width:
            return name
    return None


def _dominant_dtype(dtypes: Dict[str, str]) -> Optional[str]:
    unet = [d for k, d in dtypes.items() if k.startswith(UNET_PREFIX)]
    return max(set(unet), key=unet.count) if unet else None


def _report(source: _TensorSource) -> CheckpointReport:
    family = _family(source.shapes, source.metadata)
    report = CheckpointReport(family, None, _dominant_dtype(source.dtypes), metadata=source.metadata)
    if family != "sd1":
        return report
    report.arch = _arch(source.shapes, source.metadata)
    if report.arch is None:
        return report
    want = expected_keys(CONFIGS[report.arch])
    seen = set()
    for key, shape in source.shapes.items():
        canonical = _text_key(key)
        if key in IGNORED_KEYS or canonical in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES):
            continue
        if canonical not in want:
            report.unexpected.append(key)
            continue
        seen.add(canonical)
        if tuple(shape) != want[canonical]:
            report.mismatched.append(f"{key}: file {list(shape)} vs model {list(want[canonical])}")
    report.missing = sorted(k for k in want if k not in seen)
    report.unexpected.sort()
    return report


def check_loadable(path: str, report: CheckpointReport) -> None:
    """Raise the WorkerError load_sd1 would raise for this report; return if the file is loadable."""
    if report.family == "sdxl":
        raise WorkerError("unsupported_model", f"{path}: this is an SDXL checkpoint; lorabuild trains SD1.x", "use an SD1.x checkpoint such as v1-5-pruned or DreamShaper 8")
    if report.family == "sd2":
        raise WorkerError("unsupported_model", f"{path}: this is an SD2.x checkpoint (1024-dim OpenCLIP context, often v-prediction); lorabuild trains SD1.x", "use an SD1.x checkpoint")
    if report.family == "lora":
        raise WorkerError("unsupported_model", f"{path}: this is a LoRA, not a base model", "put LoRA files under loras:/renders:, and a full SD1.x checkpoint under models:")
    if report.family == "unknown":
        raise WorkerError("unsupported_model", f"{path}: not a Stable Diffusion checkpoint (no model.diffusion_model.* UNet keys)", "give an LDM single-file SD1.x checkpoint (.safetensors)")
    if report.arch is None:
        raise WorkerError("unsupported_model", f"{path}: SD1 layout with unknown widths; lorabuild knows the sd15, tiny and toy configurations")
    if report.missing or report.mismatched:
        problems = report.missing[:5] + report.mismatched[:5]
        raise WorkerError(
            "unsupported_model",
            f"{path}: {len(report.missing)} missing and {len(report.mismatched)} mis-shaped keys for an SD1 {report.arch} model, e.g. {', '.join(problems)}",
            "the file is incomplete or a different architecture (a UNet-only file is not a whole model)",
        )


def inspect(path: str, allow_pickle: bool = False) -> CheckpointReport:
    """Classify a file and list missing/unexpected keys without reading any weights (safetensors)."""
    source, handle = _open_source(path, allow_pickle)
    try:
        return _report(source)
    finally:
        if handle is not None:
            handle.close()


def load_sd1(path: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, allow_pickle: bool = False, arch: Optional[str] = None) -> SD1:
    source, handle = _open_source(path, allow_pickle, prefer_half=dtype in (torch.float16, torch.bfloat16))
    try:
        report = _report(source)
        check_loadable(path, report)
        if arch is not None and arch != report.arch:
            raise WorkerError("unsupported_model", f"{path}: expected a {arch} model but the file holds {report.arch}")
        config = CONFIGS[report.arch]  # type: ignore[index]
        unet, vae, text = _build_modules(config, "meta")
        target = torch.device(device)
        modules = [m.to(dtype).to_empty(device=target) for m in (unet, vae, text)]
        by_canonical = {_text_key(k): k for k in source.shapes}
        with torch.no_grad():
            for key, param in _ldm_names(*modules):
                param.copy_(source.get(by_canonical[key]))
        return SD1(config, unet, vae, text, target, dtype)
    finally:
        if handle is not None:
            handle.close()


def _init_tensor(key: str, shape: Tuple[int, ...], seed: int) -> torch.Tensor:
    """Deterministic init that depends only on (seed, key, shape): independent of build order and device."""
    if key.endswith(".bias"):
        return torch.zeros(shape)
    if len(shape) == 1:  # norm scales
        return torch.ones(shape)
    gen = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(key.encode())) % (2**62))
    if "embedding" in key:
        return torch.randn(shape, generator=gen) * 0.02
    fan_in = 1
    for d in shape[1:]:
        fan_in *= d
    bound = fan_in**-0.5
    return (torch.rand(shape, generator=gen) * 2.0 - 1.0) * bound


def build_builtin(arch: str = "tiny", seed: int = 0, path: str = "") -> dict:
    """Write a random-initialised model of ``arch`` to ``path`` (LDM layout, metadata lorabuild.arch).
    Only ``tiny`` is built: ``toy`` ships pretrained (assets/toy), and a random SD1.5 is of no use."""
    if arch != "tiny":
        raise WorkerError("bad_request", f"build_builtin builds random 'tiny' models only, not {arch!r} (the 'toy' model ships pretrained in assets/toy)")
    shapes = expected_keys(CONFIGS[arch])
    tensors = {k: _init_tensor(k, shape, seed) for k, shape in sorted(shapes.items())}
    if arch == "tiny":
        # A random VAE gives latents of std ~0.03 after the 0.18215 scale; SD's latents have std ~1, and
        # training only sees the images through them. Measured over seeds 0-2: gain 32 gives std 1.1-1.3.
        z = CONFIGS[arch].vae.z_channels
        tensors[VAE_PREFIX + "quant_conv.weight"][:z] *= TINY_LATENT_GAIN
        tensors[VAE_PREFIX + "post_quant_conv.weight"] /= TINY_LATENT_GAIN
    save_file(tensors, path, {"lorabuild.arch": arch, "lorabuild.seed": str(seed), "modelspec.architecture": "stable-diffusion-v1"})
    return {"path": path, "arch": arch, "keys": len(tensors)}
