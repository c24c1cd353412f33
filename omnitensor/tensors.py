"""Tensor payloads of jobs: inputs and outputs are safetensors archives (https://huggingface.co/docs/safetensors),
a documented, non-executable format: an 8-byte little-endian header length, a JSON header of names, dtypes,
shapes and data offsets, then raw little-endian data. Small payloads travel inline in the job's event; large ones
go to the blob store by digest.

Payloads come from anyone who can open a job, so `decode` checks the header itself before safetensors sees the
bytes: whatever the bytes, it returns arrays of a dtype in `DTYPES` or raises `TensorDecodeError`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from omnitensor.errors import OmniTensorError

# The dtypes jobs carry, by numpy name (the names of API documents and engine signatures): the one list of
# what is supported. Every other dtype is refused with `UnsupportedDtype`, on the way in and on the way out.
DTYPES = {
    "float32": np.float32, "float64": np.float64, "float16": np.float16,
    "int64": np.int64, "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_,
}

# Every dtype code the safetensors format defines (its Rust `Dtype` enum, safetensors 0.8). Those without a
# numpy dtype (BF16, the F8/F6/F4 kinds) made safetensors.numpy raise a bare KeyError; the ones numpy has but
# the engines do not take (U16–U64, C64, which JSON cannot hold either) are refused alike.
SAFETENSORS_DTYPES = frozenset({
    "BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
    "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64",
})

MAX_HEADER_BYTES = 100_000_000  # safetensors refuses larger headers; said here first, in our own words
MAX_RANK = 32  # numpy's guaranteed minimum of dimensions; the API allows 8


def _code(dtype: np.dtype) -> str:
    return "BOOL" if dtype.kind == "b" else f"{dtype.kind.upper()}{dtype.itemsize * 8}"


_BY_CODE = {_code(np.dtype(t)): np.dtype(t) for t in DTYPES.values()}  # "F32" → float32, …
_SUPPORTED = ", ".join(f"{name} ({_code(np.dtype(t))})" for name, t in DTYPES.items())


class TensorDecodeError(OmniTensorError, ValueError):
    """The bytes are not a valid safetensors archive."""

    code = "bad_tensor_payload"


class UnsupportedDtype(TensorDecodeError):
    """A tensor's dtype is one jobs cannot carry: a safetensors dtype without a numpy/engine counterpart (BF16,
    F8 kinds…) in an input, or a string, object or other array outside `DTYPES` in an output."""

    code = "unsupported_dtype"

    def __init__(self, tensor: str, dtype: str) -> None:
        self.tensor = tensor
        self.dtype = dtype
        super().__init__(f"tensor {tensor!r} has dtype {dtype}, which jobs cannot carry; supported: {_SUPPORTED}")


def encode(tensors: Mapping[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """`metadata` goes into the archive's `__metadata__` header (nodes put their engine time there)."""
    arrays = {}
    for name, value in tensors.items():
        # np.asarray, not np.ascontiguousarray: the latter turns a 0-d array into shape [1].
        array = np.asarray(value, order="C")
        if array.dtype.name not in DTYPES:
            raise UnsupportedDtype(name, array.dtype.name)
        arrays[name] = array
    return st_save(arrays, metadata=metadata)


def decode(payload: bytes) -> dict[str, np.ndarray]:
    header = _header(payload)
    data_size = len(payload) - 8 - int.from_bytes(payload[:8], "little")
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise TensorDecodeError("__metadata__ must be an object of strings")
        else:
            _check_entry(name, entry, data_size)
    try:
        arrays = dict(st_load(bytes(payload)))
    except Exception as exc:  # the header is sound: what safetensors still refuses (overlaps, gaps) is the bytes'
        raise TensorDecodeError(f"not a safetensors archive: {exc}") from exc
    for name, array in arrays.items():
        # numpy takes any byte as a bool, and a 2 is neither True nor False in comparisons.
        if array.dtype == np.bool_ and (array.view(np.uint8) > 1).any():
            raise TensorDecodeError(f"tensor {name!r}: BOOL bytes other than 0 and 1")
    return arrays


def metadata(payload: bytes) -> dict[str, str]:
    """The `__metadata__` strings of a safetensors archive (empty when none or unreadable)."""
    try:
        header = _header(payload)
    except TensorDecodeError:
        return {}
    found = header.get("__metadata__")
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _header(payload: bytes) -> dict[str, Any]:
    if len(payload) < 8:
        raise TensorDecodeError(f"not a safetensors archive: {len(payload)} bytes, the header length alone is 8")
    size = int.from_bytes(payload[:8], "little")
    if size > len(payload) - 8 or size > MAX_HEADER_BYTES:
        raise TensorDecodeError(f"not a safetensors archive: a header of {size} bytes in {len(payload)} bytes")
    try:
        text = bytes(payload[8:8 + size]).decode("utf-8")
        if not text.startswith("{"):
            raise ValueError("the header does not start with '{'")
        header = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # RecursionError: deeply nested JSON
        raise TensorDecodeError(f"not a safetensors archive: bad JSON header: {exc}") from exc
    if not isinstance(header, dict):
        raise TensorDecodeError("not a safetensors archive: the header is not a JSON object")
    return header


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python keeps the last of duplicate keys; another reader might keep the first and see other tensors.
    found = dict(pairs)
    if len(found) != len(pairs):
        raise ValueError("duplicate keys")
    return found


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_entry(name: str, entry: Any, data_size: int) -> None:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise TensorDecodeError(f"tensor {name!r}: the entry must hold exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str):
        raise TensorDecodeError(f"tensor {name!r}: dtype must be a string")
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(_is_int(d) and d >= 0 for d in shape):
        raise TensorDecodeError(f"tensor {name!r}: shape must be a list of at most {MAX_RANK} non-negative integers")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_size):
        raise TensorDecodeError(f"tensor {name!r}: data_offsets must be [begin, end] within the {data_size} data bytes")
    if dtype not in _BY_CODE:
        if dtype in SAFETENSORS_DTYPES:
            raise UnsupportedDtype(name, dtype)
        raise TensorDecodeError(f"tensor {name!r}: unknown dtype {dtype[:40]!r}")
    if math.prod(shape) * _BY_CODE[dtype].itemsize != offsets[1] - offsets[0]:
        raise TensorDecodeError(f"tensor {name!r}: shape {shape} of {dtype} does not fill data_offsets {offsets}")
