"""The API as a child process (`python -m backend serve`), configured through its environment: for the
one-command local network, the restart tests and the benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from backend.settings import ApiSettings
from omnitensor.errors import OmniTensorError


def settings_env(settings: ApiSettings) -> dict[str, str]:
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        secret = getattr(value, "get_secret_value", None)
        env[f"OMNITENSOR_API_{name.upper()}"] = str(secret() if secret else value)
    return env


class ApiProcess:
    def __init__(self, settings: ApiSettings, port: int, log: Path, host: str = "127.0.0.1") -> None:
        self.env = {**os.environ, **settings_env(settings)}
        self.host = host
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> ApiProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "backend", "serve", "--host", self.host, "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        tail = self.log.read_text(errors="replace")[-3000:]
        raise OmniTensorError(f"the API did not start on port {self.port}; its log ({self.log}) ends with:\n{tail}")

    def kill(self) -> None:
        """SIGKILL: no clean-up runs (for crash tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
