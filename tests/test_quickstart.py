"""The README's quick start, as written: its run command in the background, its curl example, Ctrl-C (SIGINT),
the run command again — and the earlier job is still there."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from omnitensor.anvil import port_in_use
from omnitensor.paths import ROOT
from tests.background import interrupt, start

pytestmark = pytest.mark.timeout(600)


def readme_block(marker: str) -> str:
    """The code block right after `<!-- marker -->` in the README."""
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```", text, re.S)
    assert found, f"README has no {marker} block"
    return found.group(1)


def test_the_readme_quick_start(tmp_path: Path) -> None:
    for port in (8545, 8000, 9464):
        assert not port_in_use(port), f"port {port} is taken; the quick start uses the README's default ports"
    run_command = readme_block("run-command").strip()
    env = {**os.environ, "OMNITENSOR_HOME": str(tmp_path / "home")}
    log = tmp_path / "up.log"
    proc, output = start(run_command, env, log)
    try:
        api_key = re.search(r"API key:\s+(\S+)", output).group(1)  # type: ignore[union-attr]
        curl = subprocess.run(["bash", "-c", readme_block("curl-example")], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, env=env, check=False)
        assert curl.returncode == 0, curl.stderr
        job = json.loads(curl.stdout)
    finally:
        assert interrupt(proc) == 0
    assert job["status"] == "settled", job
    demo = json.loads((tmp_path / "home" / "demo.json").read_text())
    assert job["outputs"]["label"]["data"] == [demo["demo_expected_label"]]
    assert "stopped; state saved" in log.read_text()

    proc, output = start(run_command, env, log)
    try:
        assert "resumed, contracts found from the earlier run" in output
        with httpx.Client(base_url="http://127.0.0.1:8000") as client:
            token = client.post("/auth/token", json={"grant_type": "api_key", "api_key": api_key}).json()
            again = client.get(f"/ai/jobs/{job['job_id']}",
                               headers={"Authorization": f"Bearer {token['access_token']}"})
        assert again.status_code == 200, again.text
        assert again.json()["outputs"] == job["outputs"]
        assert again.json()["settle_tx"] == job["settle_tx"]
    finally:
        assert interrupt(proc) == 0
