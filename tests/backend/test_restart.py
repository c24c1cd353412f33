"""The backend killed (SIGKILL) during an upload and during an inference: after a restart both complete, and
nothing accepted is lost."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from backend.process import ApiProcess
from omnitensor.anvil import free_port
from tests.backend.conftest import Api, api_settings
from tests.support import OMNIT, Net


class Running(ApiProcess):
    def __init__(self, net: Net, tmp: Path) -> None:
        self.settings = api_settings(net, tmp, chunk_bytes=4096)
        super().__init__(self.settings, free_port(), tmp / "api.log")


@pytest.fixture
def process(net: Net, tmp_path: Path) -> Iterator[Running]:
    running = Running(net, tmp_path).start()
    yield running  # type: ignore[misc]
    running.kill()


def test_an_upload_survives_a_crash(process: Running, net: Net, onnx_model: bytes) -> None:
    with httpx.Client(base_url=process.url, timeout=30) as client:
        api = Api(net, client, process.settings)  # type: ignore[arg-type]
        user = api.account()
        digest = hashlib.sha256(onnx_model).hexdigest()
        upload = client.post("/ai/models/upload", headers=user["headers"], json={
            "name": "survivor", "format": "onnx", "price_wei": "1", "size": len(onnx_model), "sha256": digest}).json()
        chunks = [onnx_model[i:i + 4096] for i in range(0, len(onnx_model), 4096)]
        for index in range(0, len(chunks), 2):
            client.put(f"/uploads/{upload['upload_id']}/chunks/{index}", content=chunks[index],
                       headers=user["headers"]).raise_for_status()
    process.kill()
    process.start()
    with httpx.Client(base_url=process.url, timeout=30) as client:
        status = client.get(f"/uploads/{upload['upload_id']}", headers=user["headers"]).json()
        assert status["received"] == list(range(0, len(chunks), 2))
        for index in set(range(len(chunks))) - set(status["received"]):
            client.put(f"/uploads/{upload['upload_id']}/chunks/{index}", content=chunks[index],
                       headers=user["headers"]).raise_for_status()
        done = client.post(f"/uploads/{upload['upload_id']}/complete", json={"sha256": digest},
                           headers=user["headers"])
        assert done.status_code == 201, done.text
    (model,) = net.call(net.registry.functions.getModels(done.json()["model_id"], 1))
    assert model[1] == user["address"]
    assert model[6].hex() == digest


def test_an_inference_survives_a_crash(process: Running, net: Net, onnx_model: bytes) -> None:
    with httpx.Client(base_url=process.url, timeout=60) as client:
        api = Api(net, client, process.settings)  # type: ignore[arg-type]
        owner, user = api.account(), api.account(deposit=OMNIT)
        model_id = api.upload_model(owner, onnx_model)["model_id"]
        net.register_node("node1")  # registered, but its process starts only after the crash
        x = np.ones((1, 64), np.float32)
        body = {"inputs": {"input": {"dtype": "float32", "shape": [1, 64], "data": x.ravel().tolist()}}}
        outcome: list[object] = []

        def request() -> None:
            try:
                outcome.append(client.post(f"/ai/models/{model_id}/inference", json=body,
                                           headers={**user["headers"], "Idempotency-Key": "crash-1"}))
            except httpx.HTTPError as exc:
                outcome.append(exc)

        waiting = threading.Thread(target=request)
        waiting.start()
        job_id = _wait_for_job_opened(net)
        process.kill()  # while the request waits for the settlement
        waiting.join(30)
        assert isinstance(outcome[0], httpx.HTTPError)  # the client saw the connection drop
    node = api.start_node("node1")  # settles while the API is down
    try:
        _wait_for_settlement(net, job_id)
        process.start()
        with httpx.Client(base_url=process.url, timeout=60) as client:
            job = Api(net, client, process.settings).wait_job(user, job_id)  # type: ignore[arg-type]
            assert job["status"] == "settled"
            assert len(job["outputs"]["label"]["data"]) == 1
            # The client retries with the same key: the same job, no second transaction.
            retried = client.post(f"/ai/models/{model_id}/inference", json=body,
                                  headers={**user["headers"], "Idempotency-Key": "crash-1"})
            assert retried.json()["job_id"] == str(job_id)
            assert len(client.get("/ai/jobs", headers=user["headers"]).json()["items"]) == 1
    finally:
        node.stop()


def _wait_for_job_opened(net: Net, timeout: float = 30) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        logs = net.chain.rpc("eth_getLogs", [{"address": net.manifest.market, "fromBlock": "0x0",
                                              "topics": [net.events.topic("JobOpened")]}])
        if logs:
            return int(net.events.decode_all(logs)[-1].args["jobId"])
        time.sleep(0.01)
    raise TimeoutError("no job opened")


def _wait_for_settlement(net: Net, job_id: int, timeout: float = 30) -> None:
    topics = [net.events.topic("JobFulfilled"), "0x" + job_id.to_bytes(32, "big").hex()]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if net.chain.rpc("eth_getLogs", [{"address": net.manifest.market, "fromBlock": "0x0", "topics": topics}]):
            return
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} not settled")
