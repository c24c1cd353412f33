"""Child processes of the local network (the API, an oracle node): started with their own log file, ready
once their health URL answers 200, stopped with SIGINT like a user's Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
from pydantic_settings import BaseSettings

from omnitensor.errors import OmniTensorError


def settings_env(settings: BaseSettings) -> dict[str, str]:
    """The environment variables that give a child process these settings (`<env_prefix><NAME>`)."""
    prefix = settings.model_config.get("env_prefix", "")
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        secret = getattr(value, "get_secret_value", None)
        env[f"{prefix}{name.upper()}"] = str(secret() if secret else value)
    return env


class ServiceProcess:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path, health_url: str) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log = log
        self.health_url = health_url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> ServiceProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if httpx.get(self.health_url, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        tail = self.log.read_text(errors="replace")[-3000:]
        raise OmniTensorError(f"the {self.name} did not start; its log ({self.log}) ends with:\n{tail}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up runs (for crash tests)."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            self.proc.wait(10)  # type: ignore[union-attr]

    def stop(self, timeout: float = 20.0) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGINT)  # type: ignore[union-attr]
            try:
                self.proc.wait(timeout)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                self.kill()
