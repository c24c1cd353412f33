"""Inference through the API with a real oracle node: JSON and binary inputs, waiting and not, job resources,
fees, errors, idempotent retries, and isolation between accounts."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from fastapi.testclient import TestClient

from backend.app import create_app
from omnitensor import tensors
from omnitensor.anvil import free_port
from omnitensor.blobs import BlobStore, sha256
from tests import models
from tests.backend.conftest import Api, api_settings, error
from tests.support import OMNIT, Net

MODEL_PRICE = OMNIT // 50
NODE_PRICE = OMNIT // 100  # NodeSettings' default price per job


def tensor_json(x: np.ndarray) -> dict:
    return {"input": {"dtype": str(x.dtype), "shape": list(x.shape), "data": x.ravel().tolist()}}


def test_inference_waits_for_the_node_and_returns_its_outputs(api: Api, onnx_model: bytes) -> None:
    user = api.account(deposit=OMNIT)
    model_id = api.upload_model(api.account(), onnx_model, price=MODEL_PRICE)["model_id"]
    api.start_node()
    x = np.random.default_rng(1).random((3, 64), dtype=np.float32)
    r = api.client.post(f"/ai/models/{model_id}/inference", json={"inputs": tensor_json(x)}, headers=user["headers"])
    assert r.status_code == 200, r.text
    job = r.json()
    expected_label, expected_probs = ort.InferenceSession(onnx_model).run(None, {"input": x})
    assert job["status"] == "settled"
    assert job["outputs"]["label"]["data"] == expected_label.tolist()
    np.testing.assert_allclose(np.array(job["outputs"]["probabilities"]["data"]).reshape(3, 10), expected_probs,
                               rtol=1e-6)
    assert job["fee_charged_wei"] == str(MODEL_PRICE + NODE_PRICE)
    assert job["timings"]["engine_ms"] > 0
    assert job["timings"]["onchain_ms"] > 0
    assert job["settle_tx"].startswith("0x")
    balance = api.client.get("/account/balance", headers=user["headers"]).json()
    assert balance["available_wei"] == str(OMNIT - MODEL_PRICE - NODE_PRICE)
    assert balance["locked_wei"] == "0"
    # The job resource says the same, and lists it.
    again = api.client.get(f"/ai/jobs/{job['job_id']}", headers=user["headers"]).json()
    assert again == job
    listed = api.client.get("/ai/jobs", headers=user["headers"]).json()
    assert [j["job_id"] for j in listed["items"]] == [job["job_id"]]


def test_binary_inputs_large_inputs_and_not_waiting(api: Api, onnx_model: bytes) -> None:
    user = api.account(deposit=OMNIT)
    model_id = api.upload_model(user, onnx_model)["model_id"]
    api.start_node()
    big = np.random.default_rng(2).random((64, 64), dtype=np.float32)  # 16 KiB: goes by digest, not inline
    r = api.client.post(f"/ai/models/{model_id}/inference", content=tensors.encode({"input": big}),
                        params={"wait": "false"},
                        headers={**user["headers"], "Content-Type": "application/octet-stream"})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    assert r.headers["location"] == f"/ai/jobs/{r.json()['job_id']}"
    job = api.wait_job(user, r.json()["job_id"])
    assert job["status"] == "settled"
    (expected, _) = ort.InferenceSession(onnx_model).run(None, {"input": big})
    assert job["outputs"]["label"]["data"] == expected.tolist()


def test_failed_jobs_are_refunded_and_reported(api: Api, onnx_model: bytes) -> None:
    user = api.account(deposit=OMNIT)
    model_id = api.upload_model(user, onnx_model)["model_id"]
    api.start_node()
    wrong = np.zeros((1, 63), np.float32)  # the model takes 64 features
    r = api.client.post(f"/ai/models/{model_id}/inference", json={"inputs": tensor_json(wrong)},
                        headers=user["headers"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "failed"
    assert r.json()["failure_code"] == 4  # INPUT_SHAPE_MISMATCH
    assert r.json()["fee_charged_wei"] == "0"
    assert api.client.get("/account/balance", headers=user["headers"]).json()["available_wei"] == str(OMNIT)


def test_inference_errors(api: Api, onnx_model: bytes) -> None:
    user = api.account(deposit=OMNIT)
    model_id = api.upload_model(user, onnx_model)["model_id"]
    x = tensor_json(np.zeros((1, 64), np.float32))
    url = f"/ai/models/{model_id}/inference"
    error(api.client.post(url, json={"inputs": x}, headers=user["headers"]), 503, "no_node_available")
    api.start_node()
    error(api.client.post("/ai/models/77/inference", json={"inputs": x}, headers=user["headers"]), 404,
          "model_not_found")
    poor = api.account()
    body = error(api.client.post(url, json={"inputs": x}, headers=poor["headers"]), 402, "insufficient_deposit")
    assert body["details"]["revert"]["error"] == "MarketInsufficientDeposit"
    error(api.client.post(url, json={"inputs": x, "max_fee_wei": "1"}, headers=user["headers"]), 409,
          "fee_above_max")
    bad = {"input": {"dtype": "float32", "shape": [2, 64], "data": [0.0] * 64}}
    error(api.client.post(url, json={"inputs": bad}, headers=user["headers"]), 422, "invalid_tensor")
    body = error(api.client.post(url, json={"inputs": {"input": {"dtype": "complex", "shape": [1], "data": [1]}}},
                                 headers=user["headers"]), 422, "unsupported_dtype")
    assert (body["details"]["tensor"], body["details"]["dtype"]) == ("input", "complex")
    scalar_for_a_vector = {"input": {"dtype": "float32", "shape": [2], "data": 3.0}}
    error(api.client.post(url, json={"inputs": scalar_for_a_vector}, headers=user["headers"]), 422, "invalid_tensor")
    huge = {"input": {"dtype": "float64", "shape": [1024, 1024], "data": [0.0]}}
    error(api.client.post(url, json={"inputs": huge}, headers=user["headers"]), 413, "tensor_too_large")
    error(api.client.post(url, content=b"not safetensors", headers={**user["headers"],
                                                                    "Content-Type": "application/octet-stream"}),
          422, "invalid_tensor")
    # Nothing was charged for any of it.
    assert api.client.get("/account/balance", headers=user["headers"]).json()["available_wei"] == str(OMNIT)


def test_a_retried_request_opens_one_job(api: Api, onnx_model: bytes) -> None:
    user = api.account(deposit=OMNIT)
    model_id = api.upload_model(api.account(), onnx_model)["model_id"]
    api.start_node()
    headers = {**user["headers"], "Idempotency-Key": "order-42"}
    body = {"inputs": tensor_json(np.ones((1, 64), np.float32))}
    first = api.client.post(f"/ai/models/{model_id}/inference", json=body, headers=headers)
    second = api.client.post(f"/ai/models/{model_id}/inference", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["job_id"] == second.json()["job_id"]
    assert len(api.client.get("/ai/jobs", headers=user["headers"]).json()["items"]) == 1
    assert api.client.get("/account/balance", headers=user["headers"]).json()["available_wei"] == str(
        OMNIT - MODEL_PRICE - NODE_PRICE)
    other_body = {"inputs": tensor_json(np.zeros((1, 64), np.float32))}
    error(api.client.post(f"/ai/models/{model_id}/inference", json=other_body, headers=headers), 422,
          "idempotency_key_reused")


def test_accounts_cannot_see_each_others_jobs(api: Api, onnx_model: bytes) -> None:
    alice, mallory = api.account(deposit=OMNIT), api.account(deposit=OMNIT)
    model_id = api.upload_model(alice, onnx_model)["model_id"]
    api.start_node()
    job = api.client.post(f"/ai/models/{model_id}/inference", json={"inputs": tensor_json(
        np.zeros((1, 64), np.float32))}, headers=alice["headers"]).json()
    error(api.client.get(f"/ai/jobs/{job['job_id']}", headers=mallory["headers"]), 404, "job_not_found")
    assert api.client.get("/ai/jobs", headers=mallory["headers"]).json()["items"] == []


def test_jobs_nobody_settles_are_refunded_after_their_deadline(api: Api, onnx_model: bytes) -> None:
    user = api.account(deposit=OMNIT)
    model_id = api.upload_model(user, onnx_model)["model_id"]
    api.net.register_node("node2")  # registered, but never runs
    r = api.client.post(f"/ai/models/{model_id}/inference", params={"wait": "false"}, headers=user["headers"],
                        json={"inputs": tensor_json(np.zeros((1, 64), np.float32)), "ttl_s": 30})
    assert r.status_code == 202, r.text
    assert api.client.get("/account/balance", headers=user["headers"]).json()["locked_wei"] != "0"
    api.net.advance(45)
    assert api.wait_job(user, r.json()["job_id"])["status"] == "refunded"
    balance = api.client.get("/account/balance", headers=user["headers"]).json()
    assert (balance["available_wei"], balance["locked_wei"]) == (str(OMNIT), "0")


def safetensors_body(dtype: str, shape: list[int], data: bytes) -> bytes:
    """An archive as another safetensors writer (torch, JAX) makes it, for dtypes numpy cannot write."""
    header = json.dumps({"input": {"dtype": dtype, "shape": shape, "data_offsets": [0, len(data)]}}).encode()
    return struct.pack("<Q", len(header)) + header + data


def test_dtypes_jobs_cannot_carry_are_refused_before_a_job_opens(api: Api, onnx_model: bytes) -> None:
    user = api.account(deposit=OMNIT)
    model_id = api.upload_model(user, onnx_model)["model_id"]
    api.start_node()
    url = f"/ai/models/{model_id}/inference"
    binary = {**user["headers"], "Content-Type": "application/octet-stream"}
    for dtype, size in [("BF16", 2 * 64), ("F8_E4M3", 64), ("F8_E5M2", 64), ("U16", 2 * 64)]:
        body = error(api.client.post(url, content=safetensors_body(dtype, [1, 64], bytes(size)), headers=binary),
                     422, "unsupported_dtype")
        assert (body["details"]["tensor"], body["details"]["dtype"]) == ("input", dtype)
        assert dtype in body["message"]
    error(api.client.post(url, json={"inputs": {"input": {"dtype": "bfloat16", "shape": [1], "data": [1.0]}}},
                          headers=user["headers"]), 422, "unsupported_dtype")
    assert api.client.get("/ai/jobs", headers=user["headers"]).json()["items"] == []
    assert api.client.get("/account/balance", headers=user["headers"]).json()["available_wei"] == str(OMNIT)


def test_0d_inputs_reach_the_node_as_0d(api: Api, onnx_model: bytes) -> None:
    """What a node reads is the job's input in its JobOpened event: no node needs to run a 0-d model to see it."""
    user = api.account(deposit=OMNIT)
    model_id = api.upload_model(user, onnx_model)["model_id"]
    api.net.register_node("node2")  # registered, but never runs
    url = f"/ai/models/{model_id}/inference"

    def opened_input(**body: Any) -> bytes:
        r = api.client.post(url, params={"wait": "false"}, **{"headers": user["headers"], **body})
        assert r.status_code == 202, r.text
        receipt = api.net.chain.receipt(r.json()["request_tx"])
        (opened,) = api.net.logs(receipt, "JobOpened")
        return opened.args["input"]

    for data in (3.0, [3.0]):
        payload = opened_input(json={"inputs": {"input": {"dtype": "float32", "shape": [], "data": data}}})
        (x,) = tensors.decode(payload).values()
        assert (x.shape, x.dtype, x.item()) == ((), np.float32, 3.0)
    raw = safetensors_body("I64", [], struct.pack("<q", -7))
    assert opened_input(content=raw, headers={**user["headers"], "Content-Type": "application/octet-stream"}) == raw


def test_a_node_with_its_own_blob_folder_hands_large_outputs_over_http(net: Net, tmp_path: Path) -> None:
    """The node and the API share no folder: the node names its large output <public_url>/blobs/<sha256>, and the
    API fetches it from there (loopback allowed here, as on a local network) and checks its digest."""
    settings = api_settings(net, tmp_path, fetch_allow_private=True)
    with TestClient(create_app(settings)) as client:
        api = Api(net, client, settings)
        try:
            user = api.account(deposit=OMNIT)
            model = models.expander()  # a 16-byte input asks for a 40 KB output: above the 8 KiB inline limit
            model_id = api.upload_model(user, model)["model_id"]
            node_blobs = BlobStore(tmp_path / "node-blobs")
            node_blobs.put(model)  # the node has the model from elsewhere; outputs land in its own folder
            port = free_port()
            api.start_node(blob_dir=node_blobs.root, metrics_port=port, public_url=f"http://127.0.0.1:{port}")
            r = client.post(f"/ai/models/{model_id}/inference", headers=user["headers"],
                            json={"inputs": {"shape": {"dtype": "int64", "shape": [2], "data": [100, 100]}}})
            assert r.status_code == 200, r.text
            job = r.json()
            assert job["status"] == "settled", job
            assert job["output_error"] is None
            assert job["outputs"]["y"]["shape"] == [100, 100]
            assert set(job["outputs"]["y"]["data"]) == {1.0}
            row_digest = next(p.name for p in node_blobs.root.glob("*/*") if p.name != sha256(model).hex())
            assert BlobStore(settings.blob_dir).has(bytes.fromhex(row_digest))  # fetched from the node, verified
        finally:
            for node in api.nodes:
                node.stop()
