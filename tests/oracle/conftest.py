"""Oracle fixtures: the digits models (trained here from scikit-learn's bundled data), a blob folder shared
by the test and the node, and real nodes running against the test chain."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eth_utils import to_checksum_address

from omnitensor import tensors
from omnitensor.blobs import BlobStore, blob_uri
from oracle import demo
from oracle.background import BackgroundNode
from oracle.settings import NodeSettings
from tests.support import OMNIT, Net, node_settings

ZERO = b"\x00" * 32


@pytest.fixture(scope="session")
def digits() -> demo.DigitsData:
    return demo.digits()


@pytest.fixture(scope="session")
def onnx_model(digits: demo.DigitsData) -> bytes:
    return demo.digits_onnx(digits)


@pytest.fixture(scope="session")
def torch_model(digits: demo.DigitsData) -> bytes:
    return demo.digits_torchscript(digits)


class Oracle:
    """The test's view of the network: open jobs with tensors, wait for their settlement."""

    def __init__(self, net: Net, blobs: BlobStore, tmp: Path) -> None:
        self.net = net
        self.blobs = blobs
        self.tmp = tmp
        self.nodes: list[BackgroundNode] = []

    def settings(self, role: str = "node1", **overrides: Any) -> NodeSettings:
        return node_settings(self.net, role, **{"manifest": self.tmp / "manifest.json", "blob_dir": self.blobs.root,
                                                "state_db": self.tmp / f"{role}.db", **overrides})

    def fund_node(self, role: str) -> None:
        self.net.omnit(role, 100 * OMNIT)

    def start(self, role: str = "node1", **overrides: Any) -> BackgroundNode:
        self.fund_node(role)
        running = BackgroundNode(self.settings(role, **overrides))
        self.nodes.append(running)
        return running

    def register(self, data: bytes, fmt: int, *, digest: bytes | None = None, uri: str | None = None,
                 price: int = OMNIT // 50) -> int:
        """Registers a model stored in the blob folder; `digest` other than the bytes' own, or another `uri`,
        register what a careless or hostile owner could."""
        real = self.blobs.put(data)
        receipt = self.net.send("owner", self.net.registry.functions.registerModel(
            digest or real, fmt, price, uri or blob_uri(real), "digits"))
        return int(self.net.event(receipt, "ModelRegistered")["modelId"])

    def open(self, model_id: int, feeds: dict[str, np.ndarray] | bytes, *, who: str = "alice",
             node: str | None = "node1", ttl: int = 600, by_reference: bool = False) -> int:
        payload = feeds if isinstance(feeds, bytes) else tensors.encode(feeds)
        digest = ZERO
        if by_reference:
            digest = self.blobs.put(payload)
            payload = blob_uri(digest).encode()
        node_address = self.net.addr(node) if node else "0x" + "00" * 20
        receipt = self.net.send(who, self.net.market.functions.openJob(
            model_id, to_checksum_address(node_address), 10 * OMNIT, self.net.now() + ttl, digest, payload))
        return int(self.net.event(receipt, "JobOpened")["jobId"])

    def settlement(self, job_id: int, timeout: float = 60.0) -> dict[str, Any]:
        """Waits for the job's JobFulfilled or JobFailed event; returns its arguments plus `event`."""
        market = self.net.manifest.market
        topics = [[self.net.events.topic("JobFulfilled"), self.net.events.topic("JobFailed")],
                  "0x" + job_id.to_bytes(32, "big").hex()]
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            logs = self.net.chain.rpc("eth_getLogs", [{"address": market, "fromBlock": "0x0", "topics": topics}])
            if logs:
                events = self.net.events.decode_all(logs)
                assert len(events) == 1, f"job {job_id} settled {len(events)} times"
                return {"event": events[0].name, **events[0].args}
            for running in self.nodes:
                if running.error:
                    raise running.error
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id} not settled within {timeout}s")

    def outputs(self, job_id: int) -> dict[str, np.ndarray]:
        settled = self.settlement(job_id)
        assert settled["event"] == "JobFulfilled", settled
        if settled["outputDigest"] != ZERO:
            return tensors.decode(self.blobs.get(settled["outputDigest"]))
        return tensors.decode(settled["output"])


@pytest.fixture
def oracle(net: Net, tmp_path: Path) -> Iterator[Oracle]:
    net.manifest.save(tmp_path / "manifest.json")
    net.fund_deposit("alice", 50 * OMNIT)
    o = Oracle(net, BlobStore(tmp_path / "blobs"), tmp_path)
    yield o
    for running in o.nodes:
        running.stop()

