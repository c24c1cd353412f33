"""The engines on their own: signatures, refusals, batching — real models, no chain."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from omnitensor.engines import (
    FORMAT_ONNX,
    FORMAT_TORCHSCRIPT,
    TORCH_SIGNATURE_FILE,
    check_feeds,
    dynamic_batch,
    load_engine,
    run_batch,
)
from omnitensor.failures import FailureCode, JobFailure
from oracle import demo


@pytest.fixture
def as_file(tmp_path: Path) -> Callable[[bytes], Path]:
    """Writes model bytes to a file: engines load from the file, as from the blob store."""

    def write(data: bytes) -> Path:
        path = tmp_path / f"model-{len(list(tmp_path.iterdir()))}"
        path.write_bytes(data)
        return path

    return write


def test_onnx_engine_matches_onnx_runtime_and_describes_its_signature(
    as_file: Callable[[bytes], Path], onnx_model: bytes, digits: demo.DigitsData
) -> None:
    engine = load_engine(FORMAT_ONNX, as_file(onnx_model), "cpu")
    assert engine.device == "cpu"
    assert [(s.name, s.dtype, s.shape) for s in engine.inputs] == [("input", "float32", (None, 64))]
    assert dynamic_batch(engine)
    direct = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    out = engine.run({"input": digits.x_test})
    np.testing.assert_array_equal(out["label"], direct.run(["label"], {"input": digits.x_test})[0])
    assert (out["label"] == digits.y_test).mean() > 0.9


def test_run_batch_equals_one_call_per_job(
    as_file: Callable[[bytes], Path], onnx_model: bytes, digits: demo.DigitsData
) -> None:
    engine = load_engine(FORMAT_ONNX, as_file(onnx_model), "cpu")
    jobs = [{"input": digits.x_test[i : i + n]} for i, n in ((0, 1), (1, 5), (6, 2))]
    batched = run_batch(engine, jobs)
    for feeds, result in zip(jobs, batched, strict=True):
        np.testing.assert_array_equal(result["label"], engine.run(feeds)["label"])


def test_onnx_with_external_data_is_refused(as_file: Callable[[bytes], Path], onnx_model: bytes) -> None:
    proto = onnx.load_from_string(onnx_model)
    tensor = proto.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    with pytest.raises(JobFailure, match="external data") as info:
        load_engine(FORMAT_ONNX, as_file(proto.SerializeToString()), "cpu")
    assert info.value.failure == FailureCode.MODEL_LOAD_FAILED


def test_torchscript_needs_its_signature(as_file: Callable[[bytes], Path], digits: demo.DigitsData) -> None:
    import torch

    scripted = torch.jit.script(torch.nn.Linear(64, 10))
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    with pytest.raises(JobFailure, match=TORCH_SIGNATURE_FILE):
        load_engine(FORMAT_TORCHSCRIPT, as_file(buffer.getvalue()), "cpu")
    buffer = io.BytesIO()
    signature = {"inputs": [{"name": "x", "dtype": "float32", "shape": [None, 64]}], "outputs": ["y"]}
    torch.jit.save(scripted, buffer, _extra_files={TORCH_SIGNATURE_FILE: json.dumps(signature)})
    engine = load_engine(FORMAT_TORCHSCRIPT, as_file(buffer.getvalue()), "cpu")
    assert engine.run({"x": digits.x_test[:3]})["y"].shape == (3, 10)


def test_a_pickle_is_never_unpickled(as_file: Callable[[bytes], Path], tmp_path) -> None:
    """A pickle posing as a TorchScript model must not run: a sentinel file proves nothing executed."""
    import os
    import pickle

    sentinel = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):  # noqa: ANN204 - the classic pickle payload
            return (os.system, (f"touch {sentinel}",))

    payload = pickle.dumps(Exploit())
    for fmt in (FORMAT_TORCHSCRIPT, FORMAT_ONNX):
        with pytest.raises(JobFailure) as info:
            load_engine(fmt, as_file(payload), "cpu")
        assert info.value.failure == FailureCode.MODEL_LOAD_FAILED
    assert not sentinel.exists()


def test_check_feeds_names_the_problem(as_file: Callable[[bytes], Path], onnx_model: bytes) -> None:
    engine = load_engine(FORMAT_ONNX, as_file(onnx_model), "cpu")
    cases = [
        ({"input": np.zeros((2, 63), np.float32)}, FailureCode.INPUT_SHAPE_MISMATCH),
        ({"input": np.zeros((2, 64), np.int64)}, FailureCode.INPUT_DTYPE_MISMATCH),
        ({"input": np.zeros((64,), np.float32)}, FailureCode.INPUT_SHAPE_MISMATCH),
        ({}, FailureCode.INPUT_NAME_MISMATCH),
    ]
    for feeds, code in cases:
        with pytest.raises(JobFailure) as info:
            check_feeds(engine, feeds)
        assert info.value.failure == code
    check_feeds(engine, {"input": np.zeros((7, 64), np.float32)})


def test_unknown_format_and_missing_cuda(as_file: Callable[[bytes], Path]) -> None:
    with pytest.raises(JobFailure) as info:
        load_engine(7, as_file(b""), "cpu")
    assert info.value.failure == FailureCode.UNKNOWN_FORMAT
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(JobFailure, match="no CUDA provider"):
            load_engine(FORMAT_ONNX, as_file(demo.digits_onnx()), "cuda")
