"""Reader and writer for the .safetensors format (own code; no dependency on the safetensors package).

Layout: 8-byte little-endian header length N, N bytes of JSON header, then the data buffer. The header
maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the data buffer)
plus an optional "__metadata__" object of string -> string.

Files are untrusted input, so ``SafetensorsFile`` checks the whole header before any tensor is touched,
with the same rules as the TypeScript reader (src/safetensors/format.ts), every message naming the file:
a regular file (never a FIFO or a device), header length 2..MAX_HEADER_BYTES inside the file, valid
UTF-8, nested at most MAX_HEADER_DEPTH deep and at most MAX_TENSORS tensors (both counted before
json.loads: no RecursionError, no half minute parsing a million entries), valid JSON, an object, no key twice in one object, string metadata, known dtypes, shape x dtype size == byte
span, spans sorted, non-overlapping and without gaps, covering the data buffer exactly.

    with SafetensorsFile(path) as f:          # memory-mapped; tensors are copy-on-write views
        f.metadata, f.keys(), f.info(key).shape
        t = f.get(key)                        # torch.Tensor on CPU
    tensors = load_file(path)                 # dict of copies, safe after the file closes
    save_file(tensors, path, metadata)        # atomic: temp file + fsync + rename
"""
from __future__ import annotations

import json
import math
import mmap
import os
import re
import stat
import struct
import tempfile
from dataclasses import dataclass
from typing import Dict, Iterable, Mapping, Optional, Tuple

import torch

from .errors import WorkerError

# Largest header accepted (the official implementation uses the same bound).
MAX_HEADER_BYTES = 100 * 1024 * 1024
# header object -> tensor entry -> shape / data_offsets list: nothing valid nests deeper
MAX_HEADER_DEPTH = 3
# an SDXL checkpoint has ~2,500 tensors, a LoRA of every layer a few thousand: 40x that is no model
MAX_TENSORS = 100_000

# every dtype of the format, with its size: the header rules accept them all ...
DTYPE_BYTES: Dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
# ... and these are the ones this torch can load
DTYPES: Dict[str, Tuple[torch.dtype, int]] = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}
DTYPE_NAMES = {torch_dtype: name for name, (torch_dtype, _) in DTYPES.items()}


class SafetensorsError(WorkerError):
    """A malformed or unreadable .safetensors file; the message names the file and the problem."""

    def __init__(self, path: str, problem: str, hint: Optional[str] = None):
        super().__init__("io", f"{path}: {problem}", hint or "the file is damaged or not a .safetensors file; re-download or re-export it")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: Tuple[int, ...]
    begin: int
    end: int


def read_header(path: str) -> Tuple[Dict[str, TensorInfo], Dict[str, str], int]:
    """Parse and check the header. Returns (tensor infos, metadata, absolute offset of the data buffer)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file"
            raise SafetensorsError(path, f"is {kind}, not a .safetensors file")
        size = st.st_size
        with open(path, "rb") as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                raise SafetensorsError(path, f"file is {size} bytes, too short for a safetensors header")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > MAX_HEADER_BYTES:
                raise SafetensorsError(path, f"header length {header_len} exceeds the {MAX_HEADER_BYTES}-byte limit")
            if header_len < 2:
                raise SafetensorsError(path, f"header length {header_len} is too small for a JSON object")
            if 8 + header_len > size:
                raise SafetensorsError(path, f"header length {header_len} runs past the end of the {size}-byte file")
            raw = fh.read(header_len)
    except OSError as exc:
        raise WorkerError("io", f"cannot read {path}: {exc.strerror or exc}") from exc
    data_start = 8 + header_len
    infos, metadata = parse_header(path, raw, size - data_start)
    return infos, metadata, data_start


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_INNERMOST = re.compile(r"[\[{][^\[\]{}]*[\]}]")


def _check_structure(path: str, text: str) -> None:
    """Nesting depth and the number of entries, outside strings, before json.loads (a deep "[[[[..."
    would hit Python's recursion limit; parsing a million entries takes half a minute). Each regex pass
    removes the innermost bracket pairs, so a pass that still removes something after MAX_HEADER_DEPTH
    passes means deeper nesting, and after MAX_HEADER_DEPTH - 1 passes only the top object's commas
    are left; all of it runs in the regex engine, not in Python."""
    rest = _JSON_STRING.sub("", text)
    for _ in range(MAX_HEADER_DEPTH - 1):
        rest = _INNERMOST.sub("", rest)
    top_level_commas = rest.count(",")
    rest = _INNERMOST.sub("", rest)
    if _INNERMOST.search(rest):
        raise SafetensorsError(path, f"header nests deeper than {MAX_HEADER_DEPTH} levels; a safetensors header never does")
    if top_level_commas + 1 > MAX_TENSORS + 1:
        raise SafetensorsError(path, f"header lists {top_level_commas + 1} entries; no model or LoRA has more than {MAX_TENSORS} tensors")


def parse_header(path: str, raw: bytes, data_len: int) -> Tuple[Dict[str, TensorInfo], Dict[str, str]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SafetensorsError(path, "header is not valid UTF-8 text") from None
    _check_structure(path, text)
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise SafetensorsError(path, f"header is not valid JSON ({exc})") from None
    except _DuplicateKey as exc:
        raise SafetensorsError(path, f"header names {json.dumps(exc.args[0])[:200]} twice in one object") from None
    except RecursionError:
        raise SafetensorsError(path, "header nests too deeply") from None
    if not isinstance(header, dict):
        raise SafetensorsError(path, "header is not a JSON object")
    if len(header) > MAX_TENSORS + 1:
        raise SafetensorsError(path, f"header lists {len(header)} entries; no model or LoRA has more than {MAX_TENSORS} tensors")

    metadata: Dict[str, str] = {}
    raw_meta = header.pop("__metadata__", None)
    if raw_meta is not None:
        if not isinstance(raw_meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw_meta.items()):
            raise SafetensorsError(path, "__metadata__ must be an object of string -> string")
        metadata = dict(raw_meta)

    infos: Dict[str, TensorInfo] = {}
    for name, entry in header.items():
        infos[name] = _check_entry(path, name, entry, data_len)

    spans = sorted(infos.items(), key=lambda kv: (kv[1].begin, kv[1].end))
    cursor = 0
    for name, info in spans:
        if info.begin < cursor:
            raise SafetensorsError(path, f"tensor {name!r} bytes [{info.begin}, {info.end}) overlap the previous tensor (ends at {cursor})")
        if info.begin > cursor:
            raise SafetensorsError(path, f"gap of {info.begin - cursor} bytes before tensor {name!r} at data offset {cursor}")
        cursor = info.end
    if cursor != data_len:
        raise SafetensorsError(path, f"tensors cover {cursor} bytes but the data buffer holds {data_len} bytes")
    return infos, metadata


def _check_entry(path: str, name: str, entry: object, data_len: int) -> TensorInfo:
    if not isinstance(entry, dict):
        raise SafetensorsError(path, f"header entry {name!r} is not an object")
    dtype = entry.get("dtype")
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise SafetensorsError(path, f"tensor {name!r} has unknown dtype {dtype!r} (known: {', '.join(DTYPE_BYTES)})")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise SafetensorsError(path, f"tensor {name!r} has a bad shape {shape!r} (want a list of non-negative integers)")
    offsets = entry.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
    ):
        raise SafetensorsError(path, f"tensor {name!r} has bad data_offsets {offsets!r} (want [begin, end])")
    begin, end = offsets
    if end < begin:
        raise SafetensorsError(path, f"tensor {name!r} ends ({end}) before it begins ({begin})")
    if end > data_len:
        raise SafetensorsError(path, f"tensor {name!r} ends at data offset {end}, past the {data_len}-byte data buffer")
    expected = math.prod(shape) * DTYPE_BYTES[dtype]
    if end - begin != expected:
        raise SafetensorsError(path, f"tensor {name!r}: shape {shape} x {dtype} needs {expected} bytes but its span holds {end - begin}")
    return TensorInfo(dtype, tuple(shape), begin, end)


class SafetensorsFile:
    """A checked, memory-mapped safetensors file. Tensors from ``get`` share the mapping (copy-on-write),
    so they stay valid only while the file is open; use ``load_file`` for independent copies."""

    def __init__(self, path: str):
        self.path = path
        self.infos, self.metadata, self._data_start = read_header(path)
        self._file = open(path, "rb")
        data_len = os.path.getsize(path) - self._data_start
        self._map: Optional[mmap.mmap] = None
        if data_len > 0:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_COPY)

    def keys(self) -> Iterable[str]:
        return self.infos.keys()

    def info(self, key: str) -> TensorInfo:
        return self.infos[key]

    def get(self, key: str) -> torch.Tensor:
        info = self.infos.get(key)
        if info is None:
            raise KeyError(f"{self.path}: no tensor named {key!r}")
        if info.dtype not in DTYPES:
            raise SafetensorsError(self.path, f"tensor {key!r} is {info.dtype}, which torch {torch.__version__} cannot load")
        torch_dtype, item = DTYPES[info.dtype]
        count = (info.end - info.begin) // item
        if count == 0 or self._map is None:
            return torch.empty(info.shape, dtype=torch_dtype)
        offset = self._data_start + info.begin
        if offset % item == 0:
            flat = torch.frombuffer(self._map, dtype=torch_dtype, count=count, offset=offset)
        else:  # misaligned span: copy instead of handing torch an unaligned pointer
            flat = torch.frombuffer(bytearray(self._map[offset : offset + count * item]), dtype=torch_dtype)
        return flat.reshape(info.shape)

    def close(self) -> None:
        # Tensors viewing the mapping may outlive us; the mapping is freed when the last one dies.
        self._map = None
        self._file.close()

    def __enter__(self) -> "SafetensorsFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_file(path: str) -> Dict[str, torch.Tensor]:
    with SafetensorsFile(path) as f:
        return {k: f.get(k).clone() for k in f.keys()}


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def save_file(tensors: Mapping[str, torch.Tensor], path: str, metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write tensors (keys sorted) with string metadata; the header is padded to 8-byte alignment.
    The file appears atomically: written to a temp file in the same folder, fsynced, then renamed."""
    header: Dict[str, object] = {}
    if metadata:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise ValueError(f"safetensors metadata must be string -> string; bad entries: {bad[:5]}")
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    offset = 0
    ordered = sorted(tensors)
    for name in ordered:
        t = tensors[name]
        if t.dtype not in DTYPE_NAMES:
            raise ValueError(f"tensor {name!r} has dtype {t.dtype}, which safetensors cannot store")
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * ((8 - (8 + len(raw)) % 8) % 8)

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(struct.pack("<Q", len(raw)))
            out.write(raw)
            for name in ordered:
                out.write(_tensor_bytes(tensors[name]))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
