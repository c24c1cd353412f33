"""The API as a child process (`python -m backend serve`), configured through its environment: for the
one-command local network, the restart tests and the benchmarks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from backend.settings import ApiSettings
from omnitensor.process import ServiceProcess, settings_env


class ApiProcess(ServiceProcess):
    def __init__(self, settings: ApiSettings, port: int, log: Path, host: str = "127.0.0.1") -> None:
        self.url = f"http://{host}:{port}"
        super().__init__("API", [sys.executable, "-m", "backend", "serve", "--host", host, "--port", str(port)],
                         {**os.environ, **settings_env(settings)}, log, f"{self.url}/health")

    def start(self, timeout: float = 90.0) -> ApiProcess:
        super().start(timeout)
        return self
