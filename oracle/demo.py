"""The demo model: a digits classifier trained on scikit-learn's bundled `digits` data (8×8 images, 10
classes; no download), exported as ONNX (ONNX Runtime) or TorchScript (PyTorch) with a dynamic batch
dimension. Used by the local quick-start, the tests and the benchmarks."""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass

import numpy as np

from omnitensor.engines import TORCH_SIGNATURE_FILE


@dataclass(frozen=True)
class DigitsData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits(seed: int = 0) -> DigitsData:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(len(x) * 0.8)
    return DigitsData(x[:cut], y[:cut], x[cut:], y[cut:])


def digits_onnx(data: DigitsData | None = None) -> bytes:
    """A two-layer MLP as ONNX: input `input` float32 [batch, 64]; outputs `label` int64 [batch] and
    `probabilities` float32 [batch, 10]."""
    from skl2onnx import to_onnx
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    data = data or digits()
    with warnings.catch_warnings():  # 300 iterations reach > 90 % accuracy; full convergence is not the point
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(data.x_train, data.y_train)
    onnx_model = to_onnx(model, data.x_train[:1], options={id(model): {"zipmap": False}},
                         target_opset={"": 17, "ai.onnx.ml": 3}, initial_types=None)
    graph = onnx_model.graph
    graph.input[0].name = _rename(onnx_model, graph.input[0].name, "input")
    return onnx_model.SerializeToString()


def _rename(model: object, old: str, new: str) -> str:
    for node in model.graph.node:  # type: ignore[attr-defined]
        node.input[:] = [new if name == old else name for name in node.input]
    return new


def digits_torchscript(data: DigitsData | None = None, epochs: int = 300) -> bytes:
    """A two-layer MLP as TorchScript: input `input` float32 [batch, 64]; output `logits` float32
    [batch, 10]; its signature is stored in the archive as omnitensor.json."""
    import torch

    data = data or digits()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    for _ in range(epochs):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    scripted = torch.jit.script(model.eval())
    signature = {"inputs": [{"name": "input", "dtype": "float32", "shape": [None, 64]}], "outputs": ["logits"]}
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer, _extra_files={TORCH_SIGNATURE_FILE: json.dumps(signature)})
    return buffer.getvalue()
