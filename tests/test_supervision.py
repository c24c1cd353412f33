"""`omnitensor up` supervises its processes: the node and then the API, killed (SIGKILL), come back on their
own while the chain and the other process keep running, and an inference through the API succeeds after
each restart; Ctrl-C then stops every process."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnitensor.anvil import free_port
from tests.background import interrupt, start

pytestmark = pytest.mark.timeout(600)

RESTART_BOUND = 60.0  # s: the first backoff (1 s) plus a process's start on a loaded 2-core machine


def running(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie has: it only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pids(home: Path) -> dict[str, int]:
    return json.loads((home / "pids.json").read_text())


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def infer(local: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(base_url=local["api_url"], timeout=120) as client:
        token = client.post("/auth/token", json={"grant_type": "api_key", "api_key": local["demo_api_key"]})
        token.raise_for_status()
        job = client.post(f"/ai/models/{local['demo_model_id']}/inference",
                          headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                          content=Path(local["demo_input"]).read_bytes())
    assert job.status_code == 200, job.text
    return job.json()


def test_up_restarts_a_killed_node_and_api_and_ctrl_c_stops_all(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rpc, api, metrics = free_port(), free_port(), free_port()
    log = tmp_path / "up.log"
    proc, _ = start(f".venv/bin/omnitensor up --port {rpc} --api-port {api} --metrics-port {metrics}",
                    {**os.environ, "OMNITENSOR_HOME": str(home)}, log)
    seen: set[int] = set()
    try:
        local = json.loads((home / "local.json").read_text())
        health = {"node": f"http://127.0.0.1:{metrics}/health", "api": f"{local['api_url']}/health"}
        for key in ("node", "api"):
            before = pids(home)
            seen.update(before.values())
            os.kill(before[key], signal.SIGKILL)
            killed = time.monotonic()
            while pids(home)[key] == before[key]:
                assert proc.poll() is None, f"`omnitensor up` exited with {proc.returncode}:\n{log.read_text()}"
                assert time.monotonic() - killed < RESTART_BOUND, f"the {key} was not restarted:\n{log.read_text()}"
                time.sleep(0.2)
            print(f"{key} restarted in {time.monotonic() - killed:.1f} s")
            after = pids(home)
            assert healthy(health[key])
            assert not running(before[key])
            # Only the killed process was replaced: the chain and the other service ran on.
            assert {k: v for k, v in after.items() if k != key} == {k: v for k, v in before.items() if k != key}
            job = infer(local)
            assert job["status"] == "settled", job
            assert job["outputs"]["label"]["data"] == [local["demo_expected_label"]]
        seen.update(pids(home).values())
        assert proc.poll() is None
    finally:
        code = interrupt(proc)
    assert code == 0, log.read_text()
    assert [pid for pid in seen if running(pid)] == []
    assert not (home / "pids.json").exists()
    output = log.read_text()
    assert f"oracle node exited (signal SIGKILL; log {home / 'node.log'}); restarting in 1 s" in output
    assert f"API exited (signal SIGKILL; log {home / 'api.log'}); restarting in 1 s" in output
    assert "stopped; state saved" in output
