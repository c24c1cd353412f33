"""Tensors in JSON: `{"name": {"dtype": "float32", "shape": [1, 64], "data": [...]}}`, `data` flat in
row-major order (nested lists are accepted on input)."""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.errors import Invalid, TooLarge
from omnitensor.tensors import DTYPES


def to_arrays(inputs: dict[str, Any], max_bytes: int) -> dict[str, np.ndarray]:
    if not inputs:
        raise Invalid("at least one input tensor is required", code="invalid_tensor")
    arrays: dict[str, np.ndarray] = {}
    total = 0
    for name, spec in inputs.items():
        dtype = DTYPES[spec.dtype]
        count = int(np.prod(spec.shape, dtype=np.int64)) if spec.shape else 1
        total += count * np.dtype(dtype).itemsize
        if total > max_bytes:
            raise TooLarge(f"input tensors above {max_bytes} bytes", code="tensor_too_large")
        try:
            flat = np.asarray(spec.data, dtype=dtype).reshape(-1)
        except (ValueError, TypeError, OverflowError) as exc:
            raise Invalid(f"tensor {name!r}: data is not {spec.dtype}: {exc}", code="invalid_tensor") from exc
        if flat.size != count:
            raise Invalid(f"tensor {name!r}: shape {spec.shape} needs {count} values, got {flat.size}",
                          code="invalid_tensor")
        arrays[name] = flat.reshape(spec.shape)
    return arrays


def to_json(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    out = {}
    for name, array in arrays.items():
        data = array.reshape(-1)
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            values: list[Any] = [float(v) if np.isfinite(v) else None for v in data]  # JSON has no NaN/inf
        else:
            values = data.tolist()
        out[name] = {"dtype": str(array.dtype), "shape": list(array.shape), "data": values}
    return out
