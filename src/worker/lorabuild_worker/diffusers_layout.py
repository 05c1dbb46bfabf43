"""SD1.x in the diffusers folder layout, read as if it were an LDM single file.

    folder/model_index.json
    folder/unet/diffusion_pytorch_model[.fp16].safetensors      (or .safetensors.index.json + shards)
    folder/vae/diffusion_pytorch_model[.fp16].safetensors
    folder/text_encoder/model[.fp16].safetensors                (pytorch_model.bin: a pickle)

``diffusers_source(folder)`` returns what the checkpoint loader needs (names, shapes, dtypes, a
getter) under the LDM key names (model.diffusion_model.*, first_stage_model.*,
cond_stage_model.transformer.*), so one loader, one key check and one set of refusals serve both
layouts. The diffusers name of every parameter is derived from our own modules (as the kohya LoRA
names are, diffusers_names.py), not from a copied table: build the model on the meta device, walk
its parameters, map each module path.
"""
from __future__ import annotations

import json
import os
import re
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn

from .configs import CONFIGS, SD15, SD1Config
from .diffusers_names import ldm_to_diffusers
from .errors import WorkerError
from .safetensors_io import DTYPES, SafetensorsFile

DTYPE_NAMES = {torch_dtype: name for name, (torch_dtype, _) in DTYPES.items()}

COMPONENT_FILES = {
    "unet": ("diffusion_pytorch_model",),
    "vae": ("diffusion_pytorch_model",),
    "text_encoder": ("model", "pytorch_model"),
}
VARIANT = "fp16"
MAX_INDEX_BYTES = 64 * 1024 * 1024


def is_diffusers_folder(path: str) -> bool:
    return os.path.isdir(path) and (os.path.isfile(os.path.join(path, "model_index.json")) or os.path.isdir(os.path.join(path, "unet")))


# ---- names, derived from the architecture ------------------------------------------------------


def _vae_module(path: str, levels: int) -> Optional[Tuple[str, ...]]:
    """LDM VAE module path -> its diffusers path(s) (the VAE attention has an old and a new naming)."""
    parts = path.split(".")
    side = parts[0]
    if side in ("quant_conv", "post_quant_conv"):
        return (path,)
    if side not in ("encoder", "decoder") or len(parts) < 2:
        return None
    rest = parts[1:]
    if rest[0] in ("conv_in", "conv_out") and len(rest) == 1:
        return (path,)
    if rest == ["norm_out"]:
        return (f"{side}.conv_norm_out",)
    if rest[0] == "mid" and len(rest) >= 2:
        if rest[1] in ("block_1", "block_2"):
            return (f"{side}.mid_block.resnets.{0 if rest[1] == 'block_1' else 1}" + _resnet_tail(rest[2:]),)
        if rest[1] == "attn_1" and len(rest) == 3:
            new = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
            old = {"norm": "group_norm", "q": "query", "k": "key", "v": "value", "proj_out": "proj_attn"}
            if rest[2] in new:
                prefix = f"{side}.mid_block.attentions.0."
                return (prefix + new[rest[2]], prefix + old[rest[2]])
        return None
    if rest[0] in ("down", "up") and len(rest) >= 3:
        level = int(rest[1])
        # LDM numbers decoder levels from the finest (up.0); diffusers from the coarsest (up_blocks.0)
        block = level if rest[0] == "down" else levels - 1 - level
        kind = "down_blocks" if rest[0] == "down" else "up_blocks"
        if rest[2] == "block" and len(rest) >= 4:
            return (f"{side}.{kind}.{block}.resnets.{rest[3]}" + _resnet_tail(rest[4:]),)
        if rest[2] in ("downsample", "upsample") and rest[3:] == ["conv"]:
            sampler = "downsamplers" if rest[2] == "downsample" else "upsamplers"
            return (f"{side}.{kind}.{block}.{sampler}.0.conv",)
    return None


def _resnet_tail(rest: List[str]) -> str:
    if not rest:
        return ""
    return "." + ("conv_shortcut" if rest == ["nin_shortcut"] else ".".join(rest))


def _param_names(module: nn.Module) -> Iterator[Tuple[str, str, str]]:
    """(parameter name, module path, leaf) for every tensor the module's state dict holds."""
    for name in module.state_dict(keep_vars=True):
        path, _, leaf = name.rpartition(".")
        yield name, path, leaf


def diffusers_names(config: SD1Config) -> Dict[str, Dict[str, Tuple[str, ...]]]:
    """component -> {our parameter name -> its diffusers name(s)}, for every parameter of a config."""
    from .checkpoint import _build_modules  # the modules are built on the meta device: no memory

    unet, vae, text = _build_modules(config, "meta")
    names: Dict[str, Dict[str, Tuple[str, ...]]] = {"unet": {}, "vae": {}, "text_encoder": {}}
    for name, path, leaf in _param_names(unet):
        mapped = ldm_to_diffusers(path, config.unet.num_res_blocks)
        if mapped is None:
            raise AssertionError(f"no diffusers name for UNet parameter {name}")
        names["unet"][name] = (f"{mapped}.{leaf}",)
    levels = len(config.vae.ch_mult)
    for name, path, leaf in _param_names(vae):
        mapped_vae = _vae_module(path, levels)
        if mapped_vae is None:
            raise AssertionError(f"no diffusers name for VAE parameter {name}")
        names["vae"][name] = tuple(f"{m}.{leaf}" for m in mapped_vae)
    for name, _, _ in _param_names(text):
        names["text_encoder"][name] = (name,)  # transformers' CLIPTextModel names are ours
    return names


# ---- files -------------------------------------------------------------------------------------


class ComponentFiles:
    """The tensors of one component (unet, vae, text_encoder): one file, shards, or a pickle."""

    def __init__(self, folder: str, component: str, allow_pickle: bool, prefer_half: bool):
        self.component = component
        self.dir = os.path.join(folder, component)
        self.files: List[str] = []
        self.shapes: Dict[str, Tuple[int, ...]] = {}
        self.dtypes: Dict[str, str] = {}
        self._getters: Dict[str, Callable[[], torch.Tensor]] = {}
        self._handles: List[SafetensorsFile] = []
        self._weight_map: Optional[Dict[str, str]] = None
        self._open(allow_pickle, prefer_half)

    def _candidates(self, prefer_half: bool) -> List[Tuple[str, str]]:
        """(kind, file name) in the order they are tried: safetensors (single or sharded) of the preferred
        variant, then of the other, then pickles."""
        variants = [f".{VARIANT}", ""] if prefer_half else ["", f".{VARIANT}"]
        found: List[Tuple[str, str]] = []
        for kind, ext in (("safetensors", ".safetensors"), ("pickle", ".bin")):
            for variant in variants:
                for base in COMPONENT_FILES[self.component]:
                    single = f"{base}{variant}{ext}"
                    index = f"{base}{ext}.index{variant}.json" if variant else f"{base}{ext}.index.json"
                    found += [(kind, single), (f"{kind}-index", index)]
                    if variant:
                        found.append((f"{kind}-index", f"{base}{variant}{ext}.index.json"))
        return found

    def _open(self, allow_pickle: bool, prefer_half: bool) -> None:
        if not os.path.isdir(self.dir):
            raise WorkerError("unsupported_model", f"{self.dir}: missing; a diffusers model folder has unet/, vae/ and text_encoder/", "give the folder that holds model_index.json")
        for kind, name in self._candidates(prefer_half):
            path = os.path.join(self.dir, name)
            if not os.path.isfile(path):
                continue
            if kind.startswith("pickle") and not allow_pickle:
                from .checkpoint import PICKLE_HINT

                raise WorkerError("pickle_refused", f"{path} is a pickled checkpoint (the folder has no .safetensors weights for {self.component}); lorabuild does not unpickle files by default", PICKLE_HINT)
            shards = self._shards(path) if kind.endswith("-index") else [path]
            for shard in shards:
                self._add(shard, pickled=kind.startswith("pickle"))
            return
        raise WorkerError("unsupported_model", f"{self.dir}: no weights (looked for {COMPONENT_FILES[self.component][0]}.safetensors, its fp16 variant, shards and .bin)", "download the whole model folder, or give an LDM single file")

    def _shards(self, index_path: str) -> List[str]:
        if os.path.getsize(index_path) > MAX_INDEX_BYTES:
            raise WorkerError("unsupported_model", f"{index_path}: index file is larger than {MAX_INDEX_BYTES} bytes")
        try:
            with open(index_path, encoding="utf-8") as fh:
                weight_map = json.load(fh).get("weight_map")
        except (OSError, ValueError, AttributeError) as exc:
            raise WorkerError("unsupported_model", f"{index_path}: not a sharded-weights index ({exc})") from None
        if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(v, str) for v in weight_map.values()):
            raise WorkerError("unsupported_model", f"{index_path}: its weight_map is not an object of tensor name -> shard file")
        shards = sorted(set(weight_map.values()))
        for shard in shards:
            if os.path.basename(shard) != shard or shard in (".", ".."):
                raise WorkerError("unsupported_model", f"{index_path}: shard {shard!r} is not a file name in the same folder")
            if not os.path.isfile(os.path.join(self.dir, shard)):
                raise WorkerError("unsupported_model", f"{index_path}: shard {shard} is missing", "download every shard the index names")
        self._weight_map = weight_map
        return [os.path.join(self.dir, s) for s in shards]

    def _add(self, path: str, pickled: bool) -> None:
        self.files.append(path)
        if pickled:
            state = torch.load(path, map_location="cpu")
            if not isinstance(state, dict):
                raise WorkerError("unsupported_model", f"{path}: the pickle holds no state_dict of tensors")
            tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
            for key, tensor in tensors.items():
                self._put(path, key, tuple(tensor.shape), DTYPE_NAMES.get(tensor.dtype, str(tensor.dtype)), (lambda t=tensor: t))
            return
        handle = SafetensorsFile(path)
        self._handles.append(handle)
        weight_map = self._weight_map
        for key, info in handle.infos.items():
            if weight_map is not None and weight_map.get(key) not in (None, os.path.basename(path)):
                raise WorkerError("unsupported_model", f"{path}: holds {key}, which the index puts in {weight_map[key]}")
            self._put(path, key, info.shape, info.dtype, (lambda h=handle, k=key: h.get(k)))

    def _put(self, path: str, key: str, shape: Tuple[int, ...], dtype: str, get: Callable[[], torch.Tensor]) -> None:
        if key in self.shapes:
            raise WorkerError("unsupported_model", f"{path}: tensor {key} of {self.component} is in more than one file")
        self.shapes[key] = shape
        self.dtypes[key] = dtype
        self._getters[key] = get

    def get(self, key: str) -> torch.Tensor:
        return self._getters[key]()

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        self._handles = []


def _arch_config(unet_shapes: Dict[str, Tuple[int, ...]]) -> SD1Config:
    width = unet_shapes.get("conv_in.weight", (0,))[0]
    for config in CONFIGS.values():
        if config.unet.model_channels == width:
            return config
    return SD15  # names only: the loader then reports the unknown widths


class DiffusersSource:
    """A diffusers folder as the checkpoint loader's tensor source, under LDM key names."""

    def __init__(self, folder: str, allow_pickle: bool = False, prefer_half: bool = False):
        from .checkpoint import TEXT_PREFIX, UNET_PREFIX, VAE_PREFIX

        self.folder = folder
        self.components: Dict[str, ComponentFiles] = {}
        try:
            for component in COMPONENT_FILES:
                self.components[component] = ComponentFiles(folder, component, allow_pickle, prefer_half)
        except BaseException:
            self.close()
            raise
        unet = self.components["unet"]
        config = _arch_config(unet.shapes)
        prefixes = {"unet": UNET_PREFIX, "vae": VAE_PREFIX, "text_encoder": TEXT_PREFIX}
        self.shapes: Dict[str, Tuple[int, ...]] = {}
        self.dtypes: Dict[str, str] = {}
        self._sources: Dict[str, Tuple[ComponentFiles, str, Optional[Tuple[int, ...]]]] = {}
        self.metadata: Dict[str, str] = {}
        if "add_embedding.linear_1.weight" in unet.shapes:
            self.metadata["modelspec.architecture"] = "stable-diffusion-xl-v1-base"
        for component, names in diffusers_names(config).items():
            files = self.components[component]
            used = set()
            for ours, theirs in names.items():
                found = next((t for t in theirs if t in files.shapes), None)
                if found is None:
                    continue
                used.add(found)
                shape = files.shapes[found]
                # the VAE attention projections are Linear in diffusers, 1x1 convolutions in LDM
                reshape = None
                if component == "vae" and ".attn_1." in ours and ours.endswith(".weight") and len(shape) == 2:
                    reshape = (*shape, 1, 1)
                key = prefixes[component] + ours
                self.shapes[key] = reshape or shape
                self.dtypes[key] = files.dtypes[found]
                self._sources[key] = (files, found, reshape)
            for other in files.shapes:
                if other not in used:  # shown as unexpected keys, by their file and name
                    key = f"{component}/{other}"
                    self.shapes[key] = files.shapes[other]
                    self.dtypes[key] = files.dtypes[other]

    def get(self, key: str) -> torch.Tensor:
        files, name, reshape = self._sources[key]
        tensor = files.get(name)
        return tensor.reshape(reshape) if reshape else tensor

    def files(self) -> List[str]:
        return [f for c in self.components.values() for f in c.files]

    def close(self) -> None:
        for files in self.components.values():
            files.close()


def folder_stamp(folder: str) -> tuple:
    """(path, size, mtime) of every weight file of a diffusers folder: changes when any is replaced."""
    stamp = []
    for component in COMPONENT_FILES:
        d = os.path.join(folder, component)
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            if re.search(r"\.(safetensors|bin|json)$", name):
                st = os.stat(os.path.join(d, name))
                stamp.append((component, name, st.st_size, st.st_mtime_ns))
    return tuple(stamp)
