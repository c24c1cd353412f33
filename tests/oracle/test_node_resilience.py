"""Many nodes, crashes, reorgs and bad start-up conditions, against the real chain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from omnitensor.anvil import dev_keys
from omnitensor.engines import FORMAT_ONNX
from oracle import demo
from oracle.errors import StartupError
from oracle.node import OracleNode
from tests.oracle.conftest import Oracle
from tests.support import OMNIT, ROLES

ZERO = b"\x00" * 32


def _settlement_counts(oracle: Oracle) -> Counter[int]:
    topics = [[oracle.net.events.topic("JobFulfilled"), oracle.net.events.topic("JobFailed")]]
    logs = oracle.net.chain.rpc("eth_getLogs", [{"address": oracle.net.manifest.market, "fromBlock": "0x0",
                                                 "topics": topics}])
    return Counter(e.args["jobId"] for e in oracle.net.events.decode_all(logs))


def test_two_nodes_settle_hundreds_of_jobs_each_exactly_once(oracle: Oracle, onnx_model: bytes,
                                                             digits: demo.DigitsData) -> None:
    model_id = oracle.register(onnx_model, FORMAT_ONNX)
    first, second = oracle.start("node1"), oracle.start("node2")
    job_ids = [oracle.open(model_id, {"input": digits.x_test[i % 300:i % 300 + 1]}, node=None) for i in range(240)]
    for job_id in job_ids:
        oracle.settlement(job_id, timeout=120)
    counts = _settlement_counts(oracle)
    assert all(counts[j] == 1 for j in job_ids)
    by_node = Counter(oracle.settlement(j)["node"] for j in job_ids)
    assert by_node == {oracle.net.addr("node1"): 120, oracle.net.addr("node2"): 120}  # round-robin, no overlap
    assert first.node.metrics.jobs.labels("fulfilled")._value.get() == 120
    assert second.node.metrics.jobs.labels("fulfilled")._value.get() == 120


def test_a_silent_nodes_job_is_taken_over_after_its_fallback_time(oracle: Oracle, onnx_model: bytes,
                                                                  digits: demo.DigitsData) -> None:
    model_id = oracle.register(onnx_model, FORMAT_ONNX)
    oracle.net.register_node("node2")  # registered, then silent: it never runs a node process
    oracle.start("node1")
    job_id = oracle.open(model_id, {"input": digits.x_test[:1]}, node="node2")
    oracle.net.advance(31)  # past fallbackAt (assign window 30 s)
    assert oracle.settlement(job_id)["node"] == oracle.net.addr("node1")


def _spawn(oracle: Oracle, role: str, log_path: Path, **env: str) -> subprocess.Popen[bytes]:
    settings = oracle.settings(role)
    variables = {
        "OMNITENSOR_NODE_RPC_URL": settings.rpc_url,
        "OMNITENSOR_NODE_PRIVATE_KEY": dev_keys()[ROLES.index(role)],
        "OMNITENSOR_NODE_MANIFEST": str(settings.manifest),
        "OMNITENSOR_NODE_BLOB_DIR": str(settings.blob_dir),
        "OMNITENSOR_NODE_STATE_DB": str(settings.state_db),
        "OMNITENSOR_NODE_METRICS_PORT": "0",
        "OMNITENSOR_NODE_POLL_INTERVAL": "0.02",
        **env,
    }
    return subprocess.Popen([sys.executable, "-m", "oracle"], env={**os.environ, **variables},
                            stdout=log_path.open("ab"), stderr=subprocess.STDOUT)


def _wait_for(log_path: Path, text: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in log_path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{text!r} not in {log_path}:\n{log_path.read_text()[-3000:]}")


@pytest.mark.parametrize("where", ["PAUSE_BEFORE_SETTLE_S", "PAUSE_AFTER_SEND_S"])
def test_sigkill_then_restart_settles_every_job_exactly_once(oracle: Oracle, onnx_model: bytes,
                                                             digits: demo.DigitsData, tmp_path: Path,
                                                             where: str) -> None:
    model_id = oracle.register(onnx_model, FORMAT_ONNX)
    oracle.fund_node("node1")
    log_path = tmp_path / "node.log"
    process = _spawn(oracle, "node1", log_path, **{f"OMNITENSOR_NODE_{where}": "30"})
    try:
        _wait_for(log_path, "node 0x")  # registered and running
        job_ids = [oracle.open(model_id, {"input": digits.x_test[i:i + 1]}) for i in range(3)]
        _wait_for(log_path, "fault injection: pausing")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        process.kill()
    if where == "PAUSE_AFTER_SEND_S":  # the settlement went out before the crash
        assert sum(_settlement_counts(oracle).values()) >= 1
    restarted = _spawn(oracle, "node1", log_path)
    try:
        more = [oracle.open(model_id, {"input": digits.x_test[5:6]})]
        for job_id in job_ids + more:
            oracle.settlement(job_id)
        time.sleep(1)  # give a wrongly repeated settlement the time to show up
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=20)
    counts = _settlement_counts(oracle)
    assert all(counts[j] == 1 for j in job_ids + more), counts
    assert restarted.returncode == 0


def test_reorg_dropping_a_settlement_and_a_job_event(oracle: Oracle, onnx_model: bytes,
                                                     digits: demo.DigitsData) -> None:
    net = oracle.net
    model_id = oracle.register(onnx_model, FORMAT_ONNX)
    running = oracle.start("node1")
    job = oracle.open(model_id, {"input": digits.x_test[:1]})
    oracle.settlement(job)
    settled_in = net.chain.get_block("latest")
    net.reorg(1)  # drop the block holding the settlement: the job is open again on the new chain
    assert net.chain.get_block(int(settled_in["number"], 16))["hash"] != settled_in["hash"]
    assert oracle.settlement(job)["event"] == "JobFulfilled"  # the node noticed and settled it again
    assert net.call(net.market.functions.jobCommitments([job]))[0] == ZERO
    assert running.node.metrics.reorgs._value.get() >= 1
    running.stop()
    oracle.nodes.remove(running)

    # A job whose opening block is dropped while the node holds it: no settlement, no gas spent.
    paused = oracle.start("node1", pause_before_settle_s=2)
    vanished = oracle.open(model_id, {"input": digits.x_test[1:2]})
    end = time.monotonic() + 20
    while vanished not in paused.node._in_flight and time.monotonic() < end:
        time.sleep(0.01)
    assert vanished in paused.node._in_flight
    nonce = net.chain.rpc("eth_getTransactionCount", [net.addr("node1"), "latest"])
    net.reorg(1)
    net.fund_deposit("bob", OMNIT)  # another requester: alice's next job would reuse the dropped job's id
    fresh = oracle.open(model_id, {"input": digits.x_test[2:3]}, who="bob")
    assert oracle.settlement(fresh)["event"] == "JobFulfilled"
    assert _settlement_counts(oracle)[vanished] == 0
    assert int(net.chain.rpc("eth_getTransactionCount", [net.addr("node1"), "latest"]), 16) == int(nonce, 16) + 1
    assert _settlement_counts(oracle)[job] == 1


def test_start_up_refuses_with_a_message(oracle: Oracle, tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="manifest not found"):
        OracleNode(oracle.settings("node1", manifest=tmp_path / "missing.json")).setup()
    with pytest.raises(StartupError, match="no stake"):
        OracleNode(oracle.settings("node2")).setup()  # node2 holds no OMNIT
    poor = "0x" + "11" * 32  # a key with no ETH at all
    with pytest.raises(StartupError, match="no gas"):
        OracleNode(oracle.settings("node1", private_key=poor)).setup()
    with pytest.raises(StartupError, match="no node key"):
        OracleNode(oracle.settings("node1", private_key=None)).setup()
    oracle.fund_node("node1")
    node = OracleNode(oracle.settings("node1", stake=5 * OMNIT))  # below the market minimum: uses the minimum
    node.setup()
    assert oracle.net.call(oracle.net.market.functions.getNode(oracle.net.addr("node1")))[0] == 100 * OMNIT
    node.state.close()
