"""The dApp path: the JavaScript test (Hardhat 2, ethers v6) in tests/dapp against a running local network."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from omnitensor.anvil import free_port
from omnitensor.paths import ROOT
from tests.background import interrupt, start

pytestmark = pytest.mark.timeout(600)


def test_a_dapp_deposits_opens_a_job_and_sees_it_settled(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rpc, api, metrics = free_port(), free_port(), free_port()
    env = {**os.environ, "OMNITENSOR_HOME": str(home)}
    proc, _ = start(f".venv/bin/omnitensor up --port {rpc} --api-port {api} --metrics-port {metrics}", env,
                    tmp_path / "up.log")
    try:
        result = subprocess.run(["npx", "hardhat", "test"], cwd=ROOT, capture_output=True, text=True, timeout=500,
                                check=False, env={**env, "OMNITENSOR_RPC_URL": f"http://127.0.0.1:{rpc}",
                                                  "OMNITENSOR_MANIFEST": str(home / "deployments" / "31337.json")})
    finally:
        assert interrupt(proc) == 0
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passing" in result.stdout
