"""A hostile corpus against a real node process: every kind of job, model and URI a stranger can use to stop a
node, interleaved with another requester's good jobs. The node never exits, every hostile job settles failed
exactly once with its code, every good job settles with the right outputs, and a restarted node fails a job that
killed a worker on sight instead of running it again."""

from __future__ import annotations

import http.server
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from omnitensor.engines import FORMAT_ONNX
from omnitensor.failures import FailureCode
from omnitensor.process import settings_env
from oracle import demo
from tests import models
from tests.oracle.conftest import Oracle
from tests.support import OMNIT

LIMITS = {"batch_timeout_s": 2.0, "load_timeout_s": 20.0, "worker_memory_bytes": 300 * 2**20,
          "fetch_deadline_s": 2.0, "fetch_allow_private": True, "max_workers": 3}


class _Hostile(http.server.BaseHTTPRequestHandler):
    """/drip: one byte every 0.5 s, for ever; /redirect: to another port of this host."""

    other_port = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.other_port}/secret")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(10**6))
        self.end_headers()
        try:
            for _ in range(600):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile_server() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _spawn(oracle: Oracle, log: Path, **overrides: object) -> subprocess.Popen[bytes]:
    env = settings_env(oracle.settings("node1", **{**LIMITS, **overrides}))
    return subprocess.Popen([sys.executable, "-m", "oracle"], env={**os.environ, **env},
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _settlements(oracle: Oracle) -> Counter[int]:
    topics = [[oracle.net.events.topic("JobFulfilled"), oracle.net.events.topic("JobFailed")]]
    logs = oracle.net.chain.rpc("eth_getLogs", [{"address": oracle.net.manifest.market, "fromBlock": "0x0",
                                                 "topics": topics}])
    return Counter(e.args["jobId"] for e in oracle.net.events.decode_all(logs))


def test_no_job_model_or_uri_stops_the_node(oracle: Oracle, onnx_model: bytes, digits: demo.DigitsData,
                                             hostile_server: str, tmp_path: Path) -> None:
    net = oracle.net
    net.fund_deposit("bob", 50 * OMNIT)
    net.register_node("node1")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    good = oracle.register(onnx_model, FORMAT_ONNX)
    encoder = oracle.register(models.sequence_encoder(), FORMAT_ONNX)
    scalar = oracle.register(models.scalar_double(), FORMAT_ONNX)
    loop = oracle.register(models.loop_counter(), FORMAT_ONNX)
    expand = oracle.register(models.expander(), FORMAT_ONNX)
    absent = b"\x02" * 32  # a digest in no store: the node must go to the URI
    by_uri = {name: oracle.register(onnx_model, FORMAT_ONNX, digest=b"\x01" * 32, uri=uri) for name, uri in {
        "zero": "file:///dev/zero", "fifo": f"file://{fifo}", "drip": f"{hostile_server}/drip",
        "redirect": f"{hostile_server}/redirect", "garbage": "http://[::1", "ftp": "ftp://example.com/m.onnx",
    }.items()}
    bf16 = safetensors.torch.save({"input": torch.ones((1, 64), dtype=torch.bfloat16)})

    node = _spawn(oracle, tmp_path / "node.log")
    try:
        hostile = {
            oracle.open(good, bf16): FailureCode.UNSUPPORTED_DTYPE,
            oracle.open(good, b"http://[::1", by_reference=False): FailureCode.BAD_INPUT,
            oracle.open(loop, {"n": np.array(10**9, np.int64)}): FailureCode.TIMEOUT,
            oracle.open(expand, {"shape": np.array([20000, 20000], np.int64)}): FailureCode.RESOURCE_LIMIT,
            oracle.open(scalar, {"x": np.array([1.0], np.float32)}): FailureCode.INPUT_SHAPE_MISMATCH,
            **{oracle.open(model_id, {"input": digits.x_test[:1]}): FailureCode.MODEL_UNAVAILABLE
               for model_id in by_uri.values()},
        }
        # Inputs by reference under URIs no node may follow: unparseable, a local file, a private port.
        for uri in ("http://[::1", "file:///dev/zero", f"{hostile_server}/redirect", f"{hostile_server}/drip"):
            receipt = net.send("alice", net.market.functions.openJob(
                good, net.addr("node1"), 10 * OMNIT, net.now() + 600, absent, uri.encode()))
            hostile[int(net.event(receipt, "JobOpened")["jobId"])] = FailureCode.INPUT_UNAVAILABLE
        fine = {}
        for i in range(6):
            fine[oracle.open(good, {"input": digits.x_test[i:i + 2]}, who="bob")] = ("digits", i)
            fine[oracle.open(encoder, {"ids": np.arange(3 + i % 2).reshape(1, -1)}, who="bob")] = ("seq", 3 + i % 2)
            fine[oracle.open(scalar, {"x": np.array(float(i), np.float32)}, who="bob")] = ("scalar", i)
        start = time.monotonic()
        for job_id, code in hostile.items():
            settled = oracle.settlement(job_id, timeout=90)
            assert (settled["event"], settled.get("code")) == ("JobFailed", code), (code, settled)
        for job_id, (kind, value) in fine.items():
            out = oracle.outputs(job_id)
            if kind == "digits":
                assert out["label"].shape == (2,)
            elif kind == "seq":
                np.testing.assert_array_equal(out["hidden"], np.arange(value, dtype=np.float32)[None] * 2 + 1)
            else:
                assert out["y"].shape == ()
                assert float(out["y"]) == 2.0 * value
        elapsed = time.monotonic() - start
        assert node.poll() is None, "the node exited"
        counts = _settlements(oracle)
        assert all(counts[j] == 1 for j in [*hostile, *fine])
        assert elapsed < 60, f"the corpus took {elapsed:.0f} s"
    finally:
        node.send_signal(signal.SIGINT)
        node.wait(30)
    assert node.returncode == 0, (tmp_path / "node.log").read_text()[-3000:]


def test_a_job_that_killed_a_worker_is_failed_on_sight_after_a_restart(oracle: Oracle, tmp_path: Path) -> None:
    oracle.net.register_node("node1")
    loop = oracle.register(models.loop_counter(), FORMAT_ONNX)
    log = tmp_path / "node.log"
    node = _spawn(oracle, log, pause_before_settle_s=60)  # killed while it waits to settle
    job_id = oracle.open(loop, {"n": np.array(10**9, np.int64)})
    end = time.monotonic() + 60
    while "fault injection: pausing" not in log.read_text(errors="replace"):
        assert time.monotonic() < end, log.read_text()[-3000:]
        assert node.poll() is None, log.read_text()[-3000:]
        time.sleep(0.1)
    node.kill()
    node.wait(10)
    restarted = _spawn(oracle, log, batch_timeout_s=30.0)  # running it again would take the full 30 s
    try:
        start = time.monotonic()
        settled = oracle.settlement(job_id, timeout=60)
        assert (settled["event"], settled["code"]) == ("JobFailed", FailureCode.TIMEOUT)
        assert time.monotonic() - start < 15
        assert "made an engine worker fail before" in log.read_text()
    finally:
        restarted.send_signal(signal.SIGINT)
        restarted.wait(30)
