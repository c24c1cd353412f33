"""Tensors in JSON: `{"name": {"dtype": "float32", "shape": [1, 64], "data": [...]}}`, `data` flat in
row-major order (nested lists are accepted on input; a 0-d tensor, `"shape": []`, may give its value bare)."""

from __future__ import annotations

import math
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
        if spec.dtype not in DTYPES:
            raise Invalid(f"tensor {name!r} has dtype {spec.dtype!r}; supported: {', '.join(DTYPES)}",
                          code="unsupported_dtype",
                          details={"tensor": name, "dtype": spec.dtype, "supported": list(DTYPES)})
        dtype = DTYPES[spec.dtype]
        if spec.shape and not isinstance(spec.data, list):
            raise Invalid(f"tensor {name!r}: a bare value is only for shape [], give a list for {spec.shape}",
                          code="invalid_tensor")
        count = math.prod(spec.shape)  # Python ints: eight dimensions of 2^31 would wrap in int64
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
        arrays[name] = flat.reshape(spec.shape)  # shape [] gives a 0-d array: `data` 3.0 and [3.0] alike
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
