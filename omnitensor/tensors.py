"""Tensor payloads of jobs: inputs and outputs are safetensors archives (https://huggingface.co/docs/safetensors),
a documented, non-executable format: a JSON header of names, dtypes and shapes, then raw little-endian data.
Small payloads travel inline in the job's event; large ones go to the blob store by digest."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from omnitensor.errors import OmniTensorError

# dtype names as safetensors writes them, for API documents and error messages.
DTYPES = {
    "float32": np.float32, "float64": np.float64, "float16": np.float16,
    "int64": np.int64, "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_,
}


class TensorDecodeError(OmniTensorError, ValueError):
    """The bytes are not a valid safetensors archive."""

    code = "bad_tensor_payload"


def encode(tensors: Mapping[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """`metadata` goes into the archive's `__metadata__` header (nodes put their engine time there)."""
    return st_save({name: np.ascontiguousarray(array) for name, array in tensors.items()}, metadata=metadata)


def decode(payload: bytes) -> dict[str, np.ndarray]:
    try:
        return dict(st_load(payload))
    except (SafetensorError, ValueError, TypeError) as exc:  # safetensors raises several kinds on bad input
        raise TensorDecodeError(f"not a safetensors archive: {exc}") from exc


def metadata(payload: bytes) -> dict[str, str]:
    """The `__metadata__` strings of a safetensors archive (empty when none or unreadable)."""
    if len(payload) < 8:
        return {}
    size = int.from_bytes(payload[:8], "little")
    try:
        header = json.loads(payload[8:8 + size])
    except ValueError:
        return {}
    found = header.get("__metadata__") if isinstance(header, dict) else None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
