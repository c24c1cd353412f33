"""Inference engines: ONNX Runtime and TorchScript, on CUDA when present (and allowed), else on the CPU.

Engines run inside the sandbox's worker processes (`omnitensor.sandbox`), never in the node's or the API's own
process. Only data formats are loaded, from the model's file (never an extra copy in memory): ONNX protobufs
without external data files, and TorchScript archives, whose signature (input names, dtypes, shapes) comes
from an `omnitensor.json` file stored inside the archive. Nothing is ever unpickled from uploaded bytes."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from omnitensor.failures import FailureCode, JobFailure

FORMAT_ONNX = 0
FORMAT_TORCHSCRIPT = 1
FORMAT_NAMES = ("onnx", "torchscript")
TORCH_SIGNATURE_FILE = "omnitensor.json"

_ONNX_DTYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16", "tensor(int8)": "int8",
    "tensor(uint8)": "uint8", "tensor(bool)": "bool",
}
# Substrings of the runtimes' messages when an allocation failed (ONNX Runtime's arena, PyTorch's allocator).
_OUT_OF_MEMORY = ("failed to allocate memory", "bad_alloc", "can't allocate memory", "out of memory")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int | None, ...]  # None: a dynamic dimension

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), str(data["dtype"]),
                   tuple(None if d is None else int(d) for d in data["shape"]))


class Engine(Protocol):
    device: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]  # dtype "" and shape () where the format does not say

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def dynamic_batch(engine: Engine) -> bool:
    """True when every input and every output has a dynamic first dimension, so jobs can be stacked along it.
    An output of unknown shape counts as batchable; `run_batch` checks its rows after the call."""
    return bool(engine.inputs) and all(spec.shape and spec.shape[0] is None for spec in engine.inputs) and all(
        not spec.shape or spec.shape[0] is None for spec in engine.outputs)


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


RESERVED_NAMES = ("__metadata__",)  # safetensors' header key: a tensor cannot be named so


def check_signature(inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> None:
    """Raises MODEL_LOAD_FAILED for names a job payload cannot carry: duplicates, empty, or reserved."""
    for kind, specs in (("input", inputs), ("output", outputs)):
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise JobFailure(FailureCode.MODEL_LOAD_FAILED, f"the model has duplicate {kind} names: {names}")
        if any(not name or name in RESERVED_NAMES for name in names):
            raise JobFailure(FailureCode.MODEL_LOAD_FAILED, f"the model has an {kind} name that tensors cannot "
                             f"carry (empty or one of {list(RESERVED_NAMES)}): {names}")


def _torch_signature(text: str) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    signature = json.loads(text)
    inputs = []
    for entry in signature["inputs"]:
        shape = entry["shape"]
        if not isinstance(entry["name"], str) or not isinstance(entry["dtype"], str) or not isinstance(shape, list):
            raise TypeError(f"input {entry!r}: name and dtype are strings, shape a list")
        if any(d is not None and (type(d) is not int or d < 0) for d in shape):
            raise ValueError(f"input {entry['name']}: dimensions are non-negative integers or null, got {shape}")
        inputs.append(TensorSpec(entry["name"], entry["dtype"], tuple(shape)))
    names = signature["outputs"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TypeError("outputs is a list of names")
    return tuple(inputs), tuple(TensorSpec(name, "", ()) for name in names)


def runtime_failure(exc: BaseException) -> JobFailure:
    """A runtime's exception while running a model, as a job failure: out of memory or a model error."""
    text = str(exc)
    if isinstance(exc, MemoryError) or any(s in text.lower() for s in _OUT_OF_MEMORY):
        return JobFailure(FailureCode.RESOURCE_LIMIT, f"the model needed more memory than this node allows: "
                                                      f"{text[:300]}")
    return JobFailure(FailureCode.MODEL_ERROR, f"the model failed: {text[:500]}")


def cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def _onnx_shape(dims: list[Any]) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in dims)


class OnnxEngine:
    def __init__(self, path: Path, device: str = "auto") -> None:
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        elif device == "cuda":
            raise JobFailure(FailureCode.MODEL_LOAD_FAILED, "device=cuda but ONNX Runtime has no CUDA provider")
        options = ort.SessionOptions()
        # Pre-packing copies every MatMul weight into a second layout: twice the model's memory for a few percent.
        options.add_session_config_entry("session.disable_prepacking", "1")
        try:
            # ONNX Runtime resolves external data relative to the model's folder: loaded through a link in an empty
            # folder, a model cannot name other files of the blob store as its weights.
            with tempfile.TemporaryDirectory(prefix="omnitensor-model-") as private:
                link = Path(private) / "model.onnx"
                link.symlink_to(Path(path).resolve())
                self.session = ort.InferenceSession(str(link), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for invalid graphs
            message = str(exc)
            if "external data" in message.lower():
                raise JobFailure(FailureCode.MODEL_LOAD_FAILED, "ONNX models with external data files are refused; "
                                 "re-export with the weights inside the .onnx file") from exc
            if isinstance(exc, MemoryError) or any(s in message.lower() for s in _OUT_OF_MEMORY):
                raise runtime_failure(exc) from exc
            raise JobFailure(FailureCode.MODEL_LOAD_FAILED, f"ONNX Runtime cannot load the model: {message[:500]}") \
                from exc
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self.inputs = tuple(TensorSpec(i.name, _ONNX_DTYPES.get(i.type, i.type), _onnx_shape(i.shape))
                            for i in self.session.get_inputs())
        self.outputs = tuple(TensorSpec(o.name, _ONNX_DTYPES.get(o.type, o.type), _onnx_shape(o.shape))
                             for o in self.session.get_outputs())
        check_signature(self.inputs, self.outputs)
        self._output_names = [o.name for o in self.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            outputs = self.session.run(self._output_names, feeds)
        except Exception as exc:  # onnxruntime's runtime errors
            raise runtime_failure(exc) from exc
        return {name: np.asarray(value) for name, value in zip(self._output_names, outputs, strict=True)}


class TorchScriptEngine:
    def __init__(self, path: Path, device: str = "auto") -> None:
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
            self.module = torch.jit.load(str(path), map_location=self._device, _extra_files=extra)
        except Exception as exc:  # torch raises RuntimeError and others for non-TorchScript bytes
            raise JobFailure(FailureCode.MODEL_LOAD_FAILED, f"not a TorchScript archive: {str(exc)[:300]}") from exc
        try:
            self.inputs, self.outputs = _torch_signature(extra[TORCH_SIGNATURE_FILE])
        except (ValueError, KeyError, TypeError, OverflowError) as exc:
            raise JobFailure(FailureCode.MODEL_LOAD_FAILED,
                             f"the archive lacks a valid {TORCH_SIGNATURE_FILE} signature: {exc}") from exc
        check_signature(self.inputs, self.outputs)
        self.module.eval()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        try:
            args = [torch.from_numpy(np.ascontiguousarray(feeds[spec.name])).to(self._device)
                    for spec in self.inputs]
            with torch.inference_mode():
                result = self.module(*args)
            values = result if isinstance(result, tuple | list) else (result,)
            if len(values) != len(self.outputs):
                raise JobFailure(FailureCode.MODEL_ERROR, f"the model returned {len(values)} outputs, its "
                                 f"signature names {len(self.outputs)}")
            if not all(isinstance(v, torch.Tensor) for v in values):
                raise JobFailure(FailureCode.MODEL_ERROR, "the model returned something other than tensors")
            outputs = {}
            for spec, value in zip(self.outputs, values, strict=True):
                try:
                    outputs[spec.name] = value.detach().cpu().numpy()
                except TypeError as exc:  # bfloat16, the float8 kinds: no numpy dtype holds them
                    raise JobFailure(FailureCode.UNSUPPORTED_DTYPE, f"output {spec.name} is {value.dtype}, which "
                                     "job payloads cannot carry") from exc
            return outputs
        except JobFailure:
            raise
        except Exception as exc:  # TorchScript raises torch.jit.Error / RuntimeError; numpy conversion TypeError
            raise runtime_failure(exc) from exc


def load_engine(model_format: int, path: Path, device: str = "auto") -> Engine:
    """Loads the model file at `path`; raises JobFailure (MODEL_LOAD_FAILED, UNKNOWN_FORMAT, RESOURCE_LIMIT)."""
    if model_format == FORMAT_ONNX:
        return OnnxEngine(path, device)
    if model_format == FORMAT_TORCHSCRIPT:
        return TorchScriptEngine(path, device)
    raise JobFailure(FailureCode.UNKNOWN_FORMAT, f"unknown model format {model_format}")


def _batch_key(feeds: dict[str, np.ndarray]) -> tuple[Any, ...] | None:
    """What must be equal for jobs to share a batch: every input's dtype and non-batch dimensions, and one row
    count across the job's inputs. None: the job runs alone (a 0-d input, or inputs of different row counts)."""
    if any(array.ndim == 0 for array in feeds.values()):
        return None
    rows = {array.shape[0] for array in feeds.values()}
    if len(rows) != 1:
        return None
    return tuple((name, array.dtype.str, array.shape[1:]) for name, array in sorted(feeds.items()))


def rows_independent(engine: Engine) -> bool:
    """Whether jobs may be stacked on this model: its first dimensions are dynamic, and two different rows run
    together get exactly the outputs each gets alone. A model that mixes rows (a cumulative sum, a reduction or a
    reversal over the batch axis) would hand one requester's data to another; such a model runs jobs one by one.
    Checked once per load with two constant rows; an error, or any bit of difference, means no."""
    if not dynamic_batch(engine):
        return False
    try:
        # Two rows that differ and are both non-zero, so sums, products, minima and maxima over the batch all show.
        rows = [{spec.name: np.full((1, *(1 if d is None else d for d in spec.shape[1:])),
                                    value if spec.dtype != "bool" else bool(value - 1), np.dtype(spec.dtype))
                 for spec in engine.inputs} for value in (1, 2)]
        alone = [engine.run(feeds) for feeds in rows]
        both = engine.run({name: np.concatenate([rows[0][name], rows[1][name]]) for name in rows[0]})
    except (JobFailure, TypeError, ValueError, MemoryError):
        return False
    return all(
        both[name].ndim > 0 and both[name].shape[0] == 2 and _identical(both[name][i:i + 1], value)
        for i, outputs in enumerate(alone) for name, value in outputs.items()
    )


def _identical(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def run_batch(engine: Engine, batch: list[dict[str, np.ndarray]], *, stack: bool | None = None
              ) -> list[dict[str, np.ndarray] | JobFailure]:
    """Runs several jobs' inputs, stacking jobs along the first axis when `stack` (default: `dynamic_batch`;
    callers that loaded the model pass `rows_independent`) and their inputs agree in dtype and every other
    dimension; each job gets the outputs of running it alone, or the JobFailure that running it alone raised.
    Feeds must have passed `check_feeds`."""
    stack = dynamic_batch(engine) if stack is None else stack
    results: list[dict[str, np.ndarray] | JobFailure | None] = [None] * len(batch)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, feeds in enumerate(batch):
        key = _batch_key(feeds) if stack else None
        if key is None:
            results[i] = _run_one(engine, feeds)
        else:
            groups.setdefault(key, []).append(i)
    for members in groups.values():
        for i, result in zip(members, _run_stacked(engine, [batch[i] for i in members]), strict=True):
            results[i] = result
    return results  # type: ignore[return-value]


def _run_one(engine: Engine, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray] | JobFailure:
    try:
        return engine.run(feeds)
    except JobFailure as exc:
        return exc


def _run_stacked(engine: Engine, batch: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray] | JobFailure]:
    if len(batch) == 1:
        return [_run_one(engine, batch[0])]
    sizes = [next(iter(feeds.values())).shape[0] for feeds in batch]
    total = sum(sizes)
    stacked = {name: np.concatenate([feeds[name] for feeds in batch]) for name in batch[0]}
    try:
        outputs = engine.run(stacked)
    except JobFailure:
        return [_run_one(engine, feeds) for feeds in batch]  # whichever input made it fail fails alone
    if any(value.ndim == 0 or value.shape[0] != total for value in outputs.values()):
        return [_run_one(engine, feeds) for feeds in batch]  # an output without the batch axis: no split exists
    bounds = np.cumsum(sizes)[:-1]
    split = {name: np.split(value, bounds) for name, value in outputs.items()}
    return [{name: parts[i] for name, parts in split.items()} for i in range(len(batch))]
