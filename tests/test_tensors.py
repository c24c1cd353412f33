"""Job payloads as safetensors archives: whatever bytes a hostile requester sends, `decode` returns arrays of a
supported dtype or raises `TensorDecodeError`; dtypes jobs cannot carry are refused by name both ways; 0-d tensors
keep their shape."""

from __future__ import annotations

import json
import re
import struct
from typing import Any

import numpy as np
import pytest
import safetensors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from omnitensor import tensors
from omnitensor.tensors import DTYPES, SAFETENSORS_DTYPES, TensorDecodeError, UnsupportedDtype

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
UNSUPPORTED = sorted(SAFETENSORS_DTYPES - {"F32", "F64", "F16", "I64", "I32", "I16", "I8", "U8", "BOOL"})


def archive(header: Any, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def decodes_or_refuses(payload: bytes) -> None:
    try:
        arrays = tensors.decode(payload)
    except TensorDecodeError:
        return
    assert all(isinstance(a, np.ndarray) and a.dtype.name in DTYPES for a in arrays.values())


def test_our_list_of_safetensors_dtypes_is_safetensors_own() -> None:
    # safetensors names every dtype it knows when it meets one it does not; a new release that adds one fails here.
    with pytest.raises(safetensors.SafetensorError) as refused:
        safetensors.deserialize(archive({"w": {"dtype": "NOPE", "shape": [], "data_offsets": [0, 0]}}))
    _, _, known = str(refused.value).partition("expected one of")
    assert set(re.findall(r"`([A-Z0-9_]+)`", known)) == SAFETENSORS_DTYPES


@pytest.mark.parametrize("dtype", UNSUPPORTED)
def test_dtypes_jobs_cannot_carry_are_refused_by_name(dtype: str) -> None:
    bits = {"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "C64": 64}.get(dtype) or int(re.search(r"\d+", dtype)[0])
    size = 8 * bits // 8  # eight values: a whole number of bytes for every width
    payload = archive({"ok": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                       "wéights": {"dtype": dtype, "shape": [8], "data_offsets": [4, 4 + size]}}, bytes(4 + size))
    safetensors.deserialize(payload)  # a well-formed archive: only its dtype is refused
    with pytest.raises(UnsupportedDtype) as refused:
        tensors.decode(payload)
    assert (refused.value.tensor, refused.value.dtype, refused.value.code) == ("wéights", dtype, "unsupported_dtype")
    assert re.search(rf"'wéights'.*\b{dtype}\b", str(refused.value))


def test_supported_dtypes_round_trip_with_their_shapes() -> None:
    arrays = {name: np.arange(6).astype(t).reshape(2, 3) for name, t in DTYPES.items()}
    arrays["scalar"] = np.array(3.5, np.float32)
    arrays["empty"] = np.zeros((0, 4), np.int8)
    decoded = tensors.decode(tensors.encode(arrays, metadata={"engine_ms": "1.5"}))
    assert decoded.keys() == arrays.keys()
    for name, array in arrays.items():
        assert (decoded[name].dtype, decoded[name].shape) == (array.dtype, array.shape)
        np.testing.assert_array_equal(decoded[name], array)
    assert tensors.metadata(tensors.encode(arrays, metadata={"engine_ms": "1.5"})) == {"engine_ms": "1.5"}


def test_a_0d_tensor_keeps_its_shape() -> None:
    decoded = tensors.decode(tensors.encode({"x": np.array(3.0, np.float32)}))["x"]
    assert (decoded.shape, decoded.item()) == ((), 3.0)
    # As another safetensors writer sends it: shape [] and one value's bytes.
    raw = archive({"x": {"dtype": "I64", "shape": [], "data_offsets": [0, 8]}}, struct.pack("<q", -7))
    assert tensors.decode(raw)["x"].shape == ()
    assert tensors.decode(raw)["x"] == -7


@pytest.mark.parametrize("output", [np.array(["cat", "dog"]), np.array([b"raw"]), np.array([{"a": 1}, None]),
                                    np.array([1 + 2j]), np.array([1], np.uint32), np.array(["2024-01-01"], "M8[D]"),
                                    np.zeros(1, [("a", "i4")])])
def test_encode_refuses_outputs_jobs_cannot_carry(output: np.ndarray) -> None:
    with pytest.raises(UnsupportedDtype) as refused:
        tensors.encode({"label": np.zeros(2, np.int64), "text": output})
    assert (refused.value.tensor, refused.value.dtype) == ("text", output.dtype.name)


@pytest.mark.parametrize("payload", [
    b"", b"\x00" * 7, struct.pack("<Q", 2**64 - 1) + b"{}", struct.pack("<Q", 10) + b"{}",
    archive(b" {}"), archive(b"{}\xff"), archive(b"[]"), archive(b"null"), archive(b'{"a": NaN}'),
    archive(b"{" * 100_000), archive(b'{"x": 1, "x": 2}'),
    archive({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1}}, bytes(4)),
    archive({"x": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, bytes(4)),
    archive({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4)),
    archive({"x": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}, bytes(4)),
    archive({"x": {"dtype": "F32", "shape": [1] * 33, "data_offsets": [0, 4]}}, bytes(4)),
    archive({"x": {"dtype": "F32", "shape": [2**64, 0], "data_offsets": [0, 0]}}),
    archive({"x": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}, bytes(4)),
    archive({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 2**70]}}, bytes(4)),
    archive({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, bytes(4)),
    archive({"x": {"dtype": "f32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),
    archive({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
             "y": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)),  # overlapping
    archive({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(8)),  # trailing bytes
    archive({"x": {"dtype": "BOOL", "shape": [1], "data_offsets": [0, 1]}}, b"\x02"),
    archive({"__metadata__": {"k": 1}}),
])
def test_malformed_archives_are_decode_errors(payload: bytes) -> None:
    with pytest.raises(TensorDecodeError):
        tensors.decode(payload)
    assert isinstance(tensors.metadata(payload), dict)


@FUZZ
@given(st.binary(max_size=512))
def test_any_bytes_decode_or_raise_a_decode_error(payload: bytes) -> None:
    decodes_or_refuses(payload)
    assert isinstance(tensors.metadata(payload), dict)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
DIM = st.integers(0, 4) | st.integers(-(2**64), 2**65) | st.booleans() | st.floats() | st.text(max_size=3)
DTYPE = st.sampled_from(sorted(SAFETENSORS_DTYPES)) | st.text(max_size=12)
OFFSET = st.integers(0, 64) | st.integers(-(2**64), 2**65) | st.booleans() | st.floats() | st.none()
ENTRY = st.fixed_dictionaries(
    {"dtype": DTYPE | JSON, "shape": st.lists(DIM, max_size=4) | JSON, "data_offsets": st.lists(OFFSET, max_size=3)},
    optional={"extra": JSON})
NAME = st.text(max_size=12) | st.just("__metadata__")
HEADER = st.dictionaries(NAME, ENTRY | JSON, max_size=4) | JSON


@FUZZ
@given(HEADER, st.binary(max_size=128),
       st.none() | st.integers(0, 2**64 - 1) | st.sampled_from([2**63, 2**64 - 1, 100_000_001]))
def test_any_header_decodes_or_raises_a_decode_error(header: Any, data: bytes, length: int | None) -> None:
    payload = archive(header, data, length)
    decodes_or_refuses(payload)
    assert isinstance(tensors.metadata(payload), dict)


@FUZZ
@given(st.dictionaries(st.text(max_size=12).filter(lambda n: n != "__metadata__"),
                       hnp.arrays(st.sampled_from([np.dtype(t) for t in DTYPES.values()]),
                                  hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)),
                       max_size=4))
def test_supported_arrays_of_any_shape_round_trip(arrays: dict[str, np.ndarray]) -> None:
    decoded = tensors.decode(tensors.encode(arrays))
    assert decoded.keys() == arrays.keys()
    for name, array in arrays.items():
        assert (decoded[name].dtype, decoded[name].shape) == (array.dtype, array.shape)
        np.testing.assert_array_equal(decoded[name], array)
