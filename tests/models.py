"""Small ONNX models built in the test run with `onnx.helper`, each standing for a kind of model a stranger can
register: dynamic `[batch, seq]` inputs, 0-d tensors, an output without a batch axis, and hostile graphs whose
cost the input chooses (a `Loop` with an input trip count, an `Expand` to an input shape)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

OPSET = [helper.make_opsetid("", 17)]


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           initializers: list[onnx.TensorProto] = ()) -> bytes:  # type: ignore[assignment]
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def sequence_encoder() -> bytes:
    """`ids` int64 [batch, seq] → `hidden` float32 [batch, seq] (2·ids + 1) and `pooled` float32 [batch] (the sum
    of `hidden` over seq): a text encoder's shapes, where each requester pads to its own length."""
    return _model(
        [helper.make_node("Cast", ["ids"], ["f"], to=TensorProto.FLOAT),
         helper.make_node("Mul", ["f", "two"], ["m"]),
         helper.make_node("Add", ["m", "one"], ["hidden"]),
         helper.make_node("ReduceSum", ["hidden", "axes"], ["pooled"], keepdims=0)],
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq"]),
         helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch"])],
        [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
         helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
         helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )


def sequence_encoder_reference(ids: np.ndarray) -> dict[str, np.ndarray]:
    hidden = ids.astype(np.float32) * 2 + 1
    return {"hidden": hidden, "pooled": hidden.sum(axis=1, dtype=np.float32)}


def scalar_double() -> bytes:
    """`x` float32 [] (0-d) → `y` float32 [] = 2·x."""
    return _model([helper.make_node("Mul", ["x", "two"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
                  [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])])


def batch_total() -> bytes:
    """`x` float32 [batch, 4] → `total` float32 [] (the sum of everything): an output without a batch axis, so
    jobs stacked together would see each other's rows."""
    return _model([helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0)],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                  [helper.make_tensor_value_info("total", TensorProto.FLOAT, [])])


def loop_counter() -> bytes:
    """`n` int64 [] → `count` float32 [1]: a `Loop` of `n` iterations, each adding 1 through a small MatMul chain,
    so `n` = 300,000 keeps a worker busy for a minute or more."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("MatMul", ["acc_in", "eye"], ["mm"]),
         helper.make_node("Add", ["mm", "inc"], ["acc_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor("eye", TensorProto.FLOAT, [64, 64], np.eye(64, dtype=np.float32).ravel().tolist()),
         helper.make_tensor("inc", TensorProto.FLOAT, [1, 64], [1.0] * 64)],
    )
    return _model(
        [helper.make_node("Loop", ["n", "cond", "acc0"], ["acc"], body=body),
         helper.make_node("Slice", ["acc", "zero", "one1", "one_axis"], ["sliced"]),
         helper.make_node("Reshape", ["sliced", "flat"], ["count"])],
        [helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("count", TensorProto.FLOAT, [1])],
        [helper.make_tensor("cond", TensorProto.BOOL, [], [True]),
         helper.make_tensor("acc0", TensorProto.FLOAT, [1, 64], [0.0] * 64),
         helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
         helper.make_tensor("one1", TensorProto.INT64, [1], [1]),
         helper.make_tensor("one_axis", TensorProto.INT64, [1], [1]),
         helper.make_tensor("flat", TensorProto.INT64, [1], [1])],
    )


def expander() -> bytes:
    """`shape` int64 [2] → `y` float32 of that shape (a constant broadcast): a 16-byte input asks for any amount
    of memory, e.g. [20000, 20000] is 1.6 GB."""
    return _model([helper.make_node("Expand", ["one", "shape"], ["y"])],
                  [helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", "cols"])],
                  [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])])


def batch_cumsum() -> bytes:
    """`x` float32 [batch, 2] → `y` float32 [batch, 2], the cumulative sum over the batch axis: every output row
    has the batch's shape, but depends on the rows before it — stacking jobs would leak one's input to another."""
    return _model([helper.make_node("CumSum", ["x", "axis"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
                  [helper.make_tensor("axis", TensorProto.INT64, [], [0])])


def named_output(name: str) -> bytes:
    """`x` float32 [batch, 2] → an output called `name` (Identity)."""
    return _model([helper.make_node("Identity", ["x"], [name])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
                  [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 2])])


def external_weights(location: str) -> bytes:
    """`x` float32 [4] → `y` = x + w, where `w` is 16 bytes of external data at `location` (relative to the
    model's folder): a model that would read whatever file lies next to it."""
    weights = helper.make_tensor("w", TensorProto.FLOAT, [4], [0.0] * 4)
    weights.ClearField("float_data")
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [weights])
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    return model.SerializeToString()
