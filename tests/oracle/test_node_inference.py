"""A real node against the real contracts: jobs opened on-chain come back with the right outputs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from omnitensor.engines import FORMAT_ONNX, FORMAT_TORCHSCRIPT
from omnitensor.failures import FailureCode
from oracle import demo
from tests.oracle.conftest import Oracle
from tests.support import OMNIT


def test_onnx_job_output_equals_direct_onnx_runtime(oracle: Oracle, onnx_model: bytes,
                                                    digits: demo.DigitsData) -> None:
    oracle.start("node1")
    model_id = oracle.register(onnx_model, FORMAT_ONNX)
    images = digits.x_test[:16]
    job_id = oracle.open(model_id, {"input": images})
    outputs = oracle.outputs(job_id)
    direct = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"]).run(None, {"input": images})
    np.testing.assert_array_equal(outputs["label"], direct[0])
    np.testing.assert_allclose(outputs["probabilities"], direct[1], rtol=1e-6)
    assert (outputs["label"] == digits.y_test[:16]).mean() > 0.8
    # The node was paid: its fee moved to its deposit, the requester's lock was released.
    assert oracle.net.deposit_of("node1")[0] == OMNIT // 100
    assert oracle.net.deposit_of("alice")[1] == 0


def test_torchscript_job_output_equals_direct_torch(oracle: Oracle, torch_model: bytes,
                                                    digits: demo.DigitsData) -> None:
    import io

    import torch

    oracle.start("node1")
    model_id = oracle.register(torch_model, FORMAT_TORCHSCRIPT)
    images = digits.x_test[:8]
    outputs = oracle.outputs(oracle.open(model_id, {"input": images}))
    direct = torch.jit.load(io.BytesIO(torch_model))(torch.from_numpy(images)).detach().numpy()
    np.testing.assert_allclose(outputs["logits"], direct, rtol=1e-5)
    np.testing.assert_array_equal(outputs["logits"].argmax(1), direct.argmax(1))


def test_large_input_and_output_travel_by_digest(oracle: Oracle, onnx_model: bytes,
                                                 digits: demo.DigitsData) -> None:
    oracle.start("node1")
    model_id = oracle.register(onnx_model, FORMAT_ONNX)
    images = np.tile(digits.x_test, (2, 1))  # 720 images: the output is above the 8 KiB inline limit
    job_id = oracle.open(model_id, {"input": images}, by_reference=True)
    settled = oracle.settlement(job_id)
    assert settled["outputDigest"] != b"\x00" * 32
    assert settled["output"].decode() == f"blob://sha256/{settled['outputDigest'].hex()}"
    outputs = oracle.outputs(job_id)
    assert outputs["label"].shape == (720,)


def test_bad_jobs_fail_with_their_code_and_the_node_keeps_serving(oracle: Oracle, onnx_model: bytes,
                                                                  torch_model: bytes,
                                                                  digits: demo.DigitsData) -> None:
    oracle.start("node1", max_input_bytes=64 * 1024)
    good = oracle.register(onnx_model, FORMAT_ONNX)
    corrupt = oracle.register(onnx_model, FORMAT_ONNX, digest=b"\x42" * 32)  # bytes do not match the digest
    garbage = oracle.register(b"definitely not a model", FORMAT_ONNX)
    wrong_format = oracle.register(onnx_model, FORMAT_TORCHSCRIPT)  # ONNX bytes declared as TorchScript
    images = digits.x_test[:4]
    cases = {
        oracle.open(good, {"input": images[:, :32]}): FailureCode.INPUT_SHAPE_MISMATCH,
        oracle.open(good, {"input": images.astype(np.float64)}): FailureCode.INPUT_DTYPE_MISMATCH,
        oracle.open(good, {"pixels": images}): FailureCode.INPUT_NAME_MISMATCH,
        oracle.open(good, b"not safetensors"): FailureCode.BAD_INPUT,
        oracle.open(good, {"input": np.zeros((300, 64), np.float32)}, by_reference=True): FailureCode.INPUT_TOO_LARGE,
        oracle.open(corrupt, {"input": images}): FailureCode.MODEL_UNAVAILABLE,
        oracle.open(garbage, {"input": images}): FailureCode.MODEL_LOAD_FAILED,
        oracle.open(wrong_format, {"input": images}): FailureCode.MODEL_LOAD_FAILED,
    }
    fine = oracle.open(good, {"input": images})
    alice_before = oracle.net.deposit_of("alice")
    for job_id, code in cases.items():
        settled = oracle.settlement(job_id)
        assert (settled["event"], settled.get("code")) == ("JobFailed", code), (code, settled)
    assert oracle.outputs(fine)["label"].shape == (4,)
    # Failed jobs are refunded at once: only the one good job's fee left alice's deposit.
    available, locked = oracle.net.deposit_of("alice")
    assert locked == 0
    assert available == alice_before[0] + alice_before[1] - (OMNIT // 50 + OMNIT // 100)


def test_pending_jobs_of_one_model_run_as_one_batch(oracle: Oracle, onnx_model: bytes,
                                                    digits: demo.DigitsData) -> None:
    model_id = oracle.register(onnx_model, FORMAT_ONNX)
    oracle.net.register_node("node1")
    job_ids = [oracle.open(model_id, {"input": digits.x_test[i:i + 2]}) for i in range(12)]
    oracle.start("node1", max_batch=8)  # the jobs are already waiting when the node starts
    for job_id in job_ids:
        oracle.settlement(job_id)
    txs = {_settlement_tx(oracle, j) for j in job_ids}
    assert len(txs) == 2  # 12 jobs, batches of at most 8: two settlement transactions
    for i, job_id in enumerate(job_ids):
        expected = ort.InferenceSession(onnx_model).run(["label"], {"input": digits.x_test[i:i + 2]})[0]
        np.testing.assert_array_equal(oracle.outputs(job_id)["label"], expected)


def _settlement_tx(oracle: Oracle, job_id: int) -> str:
    topics = [oracle.net.events.topic("JobFulfilled"), "0x" + job_id.to_bytes(32, "big").hex()]
    (log,) = oracle.net.chain.rpc("eth_getLogs", [{"address": oracle.net.manifest.market, "fromBlock": "0x0",
                                                   "topics": topics}])
    return log["transactionHash"]
