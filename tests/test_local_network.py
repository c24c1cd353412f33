"""The network `omnitensor up` runs, used the ways its users use it: the JavaScript dApp test (Hardhat 2,
ethers v6) in tests/dapp, and the `omnitensor` terminal commands."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from omnitensor.anvil import free_port
from omnitensor.paths import ROOT
from oracle import demo
from tests.background import interrupt, start

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("network")
    rpc, api, metrics = free_port(), free_port(), free_port()
    env = {**os.environ, "OMNITENSOR_HOME": str(tmp / "home")}
    proc, _ = start(f".venv/bin/omnitensor up --port {rpc} --api-port {api} --metrics-port {metrics}", env,
                    tmp / "up.log")
    yield {**env, "OMNITENSOR_RPC_URL": f"http://127.0.0.1:{rpc}",
           "OMNITENSOR_MANIFEST": str(tmp / "home" / "deployments" / "31337.json")}
    assert interrupt(proc) == 0


def omnitensor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / ".venv/bin/omnitensor"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_a_dapp_deposits_opens_a_job_and_sees_it_settled(network: dict[str, str]) -> None:
    result = subprocess.run(["npx", "hardhat", "test"], cwd=ROOT, capture_output=True, text=True, timeout=500,
                            check=False, env=network)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passing" in result.stdout


def test_the_terminal_commands(network: dict[str, str], tmp_path: Path) -> None:
    created = omnitensor(network, "accounts", "create", "--label", "cli")
    assert created.returncode == 0, created.stderr
    api_key = json.loads(created.stdout)["api_key"]
    model = tmp_path / "digits.onnx"
    model.write_bytes(demo.digits_onnx())
    # A new account owns the model; the demo account (the default key) pays for the inference.
    uploaded = omnitensor(network, "models", "upload", str(model), "--price-wei", "1000", "--api-key", api_key)
    assert uploaded.returncode == 0, uploaded.stderr
    assert "bytes" in uploaded.stderr  # the progress bar
    model_id = json.loads(uploaded.stdout)["model_id"]
    x = demo.digits().x_test[:2]
    request = tmp_path / "input.json"
    request.write_text(json.dumps({"inputs": {"input": {"dtype": "float32", "shape": [2, 64],
                                                        "data": x.ravel().tolist()}}}))
    job = omnitensor(network, "infer", str(model_id), str(request))
    assert job.returncode == 0, job.stderr
    out = json.loads(job.stdout)
    assert out["status"] == "settled"
    expected = ort.InferenceSession(model.read_bytes()).run(["label"], {"input": x})[0]
    assert out["outputs"]["label"]["data"] == expected.tolist()
    status = omnitensor(network, "status")
    assert status.returncode == 0, status.stderr
    assert "active nodes: 1" in status.stdout
    assert "open" in status.stdout
    missing = omnitensor(network, "infer", "999", str(request))
    assert missing.returncode == 1
    assert "model_not_found" in missing.stderr
    assert np.isfinite(np.array(out["outputs"]["probabilities"]["data"])).all()
