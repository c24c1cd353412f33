"""What an operator sees: health and metrics on the local port, and allocation usage metered and reported."""

from __future__ import annotations

import time

import httpx

from omnitensor import tensors
from omnitensor.anvil import free_port
from omnitensor.engines import FORMAT_ONNX
from oracle import demo
from tests.oracle.conftest import Oracle
from tests.support import OMNIT

ZERO = b"\x00" * 32


def test_health_and_metrics_endpoints(oracle: Oracle, onnx_model: bytes, digits: demo.DigitsData) -> None:
    port = free_port()
    running = oracle.start("node1", metrics_port=port)
    model_id = oracle.register(onnx_model, FORMAT_ONNX)
    oracle.outputs(oracle.open(model_id, {"input": digits.x_test[:2]}))
    health = httpx.get(f"http://127.0.0.1:{port}/health").json()
    assert health["status"] == "ok"
    assert health["device"] in ("cpu", "cuda")
    assert health["node"] == oracle.net.addr("node1")
    assert health["last_block"] > 0
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert f'omnitensor_node_device{{device="{running.node.status.device}"}} 1.0' in metrics
    assert 'omnitensor_node_jobs_total{outcome="fulfilled"} 1.0' in metrics
    assert httpx.get(f"http://127.0.0.1:{port}/nope").status_code == 404


def test_allocation_jobs_are_metered_and_usage_reported(oracle: Oracle, onnx_model: bytes,
                                                        digits: demo.DigitsData) -> None:
    net = oracle.net
    running = oracle.start("node1", usage_report_interval=0.2)
    model_id = oracle.register(onnx_model, FORMAT_ONNX)
    receipt = net.send("alice", net.market.functions.openAllocation(net.addr("node1"), 60, 3600))
    allocation_id = net.event(receipt, "AllocationOpened")["allocationId"]
    job_ids = []
    for i in range(3):
        receipt = net.send("alice", net.market.functions.openAllocationJob(
            allocation_id, model_id, OMNIT, net.now() + 600, ZERO, tensors.encode({"input": digits.x_test[i:i + 4]})))
        job_ids.append(net.event(receipt, "JobOpened")["jobId"])
    for job_id in job_ids:
        assert oracle.settlement(job_id)["event"] == "JobFulfilled"
    end = time.monotonic() + 10
    while net.call(net.market.functions.getAllocation(allocation_id))[3] == 0 and time.monotonic() < end:
        time.sleep(0.1)
    info = net.call(net.market.functions.getAllocation(allocation_id))
    assert info[3] == 1  # a few milliseconds of engine time, billed as one started GPU-second
    assert running.node.state.usage_to_report() == []
    net.send("alice", net.market.functions.closeAllocation(allocation_id))
    assert net.deposit_of("node1")[0] == OMNIT // 1000  # 1 s × price per second; no per-job node fee
