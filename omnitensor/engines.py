"""Inference engines: ONNX Runtime and TorchScript, on CUDA when present (and allowed), else on the CPU.

Only data formats are loaded: ONNX protobufs without external data files, and TorchScript archives, whose
signature (input names, dtypes, shapes) comes from an `omnitensor.json` file stored inside the archive.
Nothing is ever unpickled from uploaded bytes."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from omnitensor.failures import FailureCode, JobFailure

FORMAT_ONNX = 0
FORMAT_TORCHSCRIPT = 1
TORCH_SIGNATURE_FILE = "omnitensor.json"

_ONNX_DTYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16", "tensor(int8)": "int8",
    "tensor(uint8)": "uint8", "tensor(bool)": "bool",
}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int | None, ...]  # None: a dynamic dimension

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


class Engine(Protocol):
    device: str
    inputs: tuple[TensorSpec, ...]
    output_names: tuple[str, ...]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def dynamic_batch(engine: Engine) -> bool:
    """True when every input's first dimension is dynamic, so jobs can be stacked into one batch."""
    return all(spec.shape and spec.shape[0] is None for spec in engine.inputs)


def check_feeds(engine: Engine, feeds: dict[str, np.ndarray]) -> None:
    """Raises a JobFailure when `feeds` do not match the model's input signature."""
    expected = {spec.name: spec for spec in engine.inputs}
    if set(feeds) != set(expected):
        raise JobFailure(FailureCode.INPUT_NAME_MISMATCH,
                         f"inputs {sorted(feeds)} but the model takes {sorted(expected)}")
    for name, array in feeds.items():
        spec = expected[name]
        if str(array.dtype) != spec.dtype:
            raise JobFailure(FailureCode.INPUT_DTYPE_MISMATCH, f"{name} is {array.dtype}, the model takes {spec.dtype}")
        if len(array.shape) != len(spec.shape) or any(
            want is not None and got != want for got, want in zip(array.shape, spec.shape, strict=True)
        ):
            shape = ["?" if d is None else d for d in spec.shape]
            raise JobFailure(FailureCode.INPUT_SHAPE_MISMATCH,
                             f"{name} has shape {list(array.shape)}, expected {shape}")


def cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


class OnnxEngine:
    def __init__(self, data: bytes, device: str = "auto") -> None:
        import onnx
        import onnxruntime as ort

        try:
            proto = onnx.load_from_string(data)
        except Exception as exc:  # protobuf raises its own DecodeError and others
            raise JobFailure(FailureCode.MODEL_LOAD_FAILED, f"not an ONNX model: {exc}") from exc
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
            raise JobFailure(FailureCode.MODEL_LOAD_FAILED, "ONNX models with external data files are refused")
        providers = ["CPUExecutionProvider"]
        if device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        elif device == "cuda":
            raise JobFailure(FailureCode.MODEL_LOAD_FAILED, "device=cuda but ONNX Runtime has no CUDA provider")
        try:
            self.session = ort.InferenceSession(data, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for invalid graphs
            raise JobFailure(FailureCode.MODEL_LOAD_FAILED, f"ONNX Runtime cannot load the model: {exc}") from exc
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self.inputs = tuple(
            TensorSpec(i.name, _ONNX_DTYPES.get(i.type, i.type),
                       tuple(d if isinstance(d, int) else None for d in i.shape))
            for i in self.session.get_inputs()
        )
        self.output_names = tuple(o.name for o in self.session.get_outputs())

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            outputs = self.session.run(list(self.output_names), feeds)
        except Exception as exc:  # onnxruntime's runtime errors
            raise JobFailure(FailureCode.MODEL_ERROR, f"the model failed: {exc}") from exc
        return {name: np.asarray(value) for name, value in zip(self.output_names, outputs, strict=True)}


class TorchScriptEngine:
    def __init__(self, data: bytes, device: str = "auto") -> None:
        try:
            import torch
        except ImportError as exc:
            raise JobFailure(FailureCode.UNKNOWN_FORMAT,
                             "this node has no PyTorch; install the torch extra to run TorchScript") from exc
        self._torch = torch
        use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        if device == "cuda" and not use_cuda:
            raise JobFailure(FailureCode.MODEL_LOAD_FAILED, "device=cuda but PyTorch sees no GPU")
        self._device = torch.device("cuda" if use_cuda else "cpu")
        self.device = self._device.type
        extra = {TORCH_SIGNATURE_FILE: ""}
        try:
            self.module = torch.jit.load(io.BytesIO(data), map_location=self._device, _extra_files=extra)
        except Exception as exc:  # torch raises RuntimeError and others for non-TorchScript bytes
            raise JobFailure(FailureCode.MODEL_LOAD_FAILED, f"not a TorchScript archive: {exc}") from exc
        try:
            signature = json.loads(extra[TORCH_SIGNATURE_FILE])
            self.inputs = tuple(TensorSpec(i["name"], i["dtype"], tuple(i["shape"])) for i in signature["inputs"])
            self.output_names = tuple(signature["outputs"])
        except (ValueError, KeyError, TypeError) as exc:
            raise JobFailure(FailureCode.MODEL_LOAD_FAILED,
                             f"the archive lacks a valid {TORCH_SIGNATURE_FILE} signature: {exc}") from exc
        self.module.eval()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(feeds[spec.name])).to(self._device) for spec in self.inputs]
        try:
            with torch.inference_mode():
                result = self.module(*args)
        except Exception as exc:  # TorchScript raises torch.jit.Error / RuntimeError
            raise JobFailure(FailureCode.MODEL_ERROR, f"the model failed: {exc}") from exc
        values = result if isinstance(result, tuple | list) else (result,)
        if len(values) != len(self.output_names):
            raise JobFailure(FailureCode.MODEL_ERROR,
                             f"the model returned {len(values)} outputs, its signature names {len(self.output_names)}")
        return {name: v.detach().cpu().numpy() for name, v in zip(self.output_names, values, strict=True)}


def load_engine(model_format: int, data: bytes, device: str = "auto") -> Engine:
    if model_format == FORMAT_ONNX:
        return OnnxEngine(data, device)
    if model_format == FORMAT_TORCHSCRIPT:
        return TorchScriptEngine(data, device)
    raise JobFailure(FailureCode.UNKNOWN_FORMAT, f"unknown model format {model_format}")


def run_batch(engine: Engine, batch: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Runs several jobs' inputs as one call when the model has a dynamic batch dimension (stacking along
    axis 0 and splitting the outputs back), else one call per job."""
    if len(batch) == 1 or not dynamic_batch(engine):
        return [engine.run(feeds) for feeds in batch]
    sizes = [next(iter(feeds.values())).shape[0] for feeds in batch]
    stacked = {spec.name: np.concatenate([feeds[spec.name] for feeds in batch]) for spec in engine.inputs}
    outputs = engine.run(stacked)
    bounds = np.cumsum(sizes)[:-1]
    split = {name: np.split(value, bounds) for name, value in outputs.items()}
    return [{name: parts[i] for name, parts in split.items()} for i in range(len(batch))]
