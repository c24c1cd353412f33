"""Child processes of the local network (the API, an oracle node): started with their own log file, ready
once their health URL answers 200, stopped with SIGINT like a user's Ctrl-C, and kept running by a
`Supervisor` that restarts the ones that exit."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


def exit_status(returncode: int | None) -> str:
    """How a process ended, as a person reads it: `exit code 1`, `signal SIGKILL`."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


class ServiceProcess:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path, health_url: str) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log = log
        self.health_url = health_url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> ServiceProcess:
        self._spawn()
        if self._wait_ready(timeout):
            return self
        self.stop()
        tail = self.log.read_text(errors="replace")[-3000:]
        raise OmniTensorError(f"the {self.name} did not start; its log ({self.log}) ends with:\n{tail}")

    def restart(self, timeout: float = 90.0, cancel: threading.Event | None = None) -> bool:
        """Starts the process again with the same arguments and environment, appending to the same log. True
        once it is ready; False when it exits first, does not answer within `timeout`, or `cancel` is set
        (a user's Ctrl-C must not wait out a slow start) — it is then stopped."""
        self.stop()
        self._spawn()
        if self._wait_ready(timeout, cancel):
            return True
        self.stop()
        return False

    def _spawn(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def _wait_ready(self, timeout: float, cancel: threading.Event | None = None) -> bool:
        cancel = cancel or threading.Event()
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cancel.is_set():
            try:
                if httpx.get(self.health_url, timeout=1).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if not self.running:
                return False
            cancel.wait(0.1)
        return False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def exit_status(self) -> str:
        return exit_status(self.proc.poll() if self.proc is not None else None)

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


@dataclass
class _Watched:
    service: ServiceProcess
    ready_at: float | None  # when it last became ready; None while it has not since its last failure
    failures: int = 0  # in a row: the exponent of the next backoff
    due: float | None = None  # when the pending restart is to happen


def _say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


class Supervisor:
    """Restarts the services that exit, each after its own exponential backoff (`first_delay` doubling up to
    `max_delay`; back to `first_delay` once a service stayed up `healthy_after` seconds), so that a process
    that crashes at once does not spin. Driven by `poll`, so that its owner can watch other things (the
    chain) in the same loop; `cancel` (set by Ctrl-C) ends a restart's readiness wait."""

    def __init__(self, services: Iterable[ServiceProcess], cancel: threading.Event, *, first_delay: float = 1.0,
                 max_delay: float = 30.0, healthy_after: float = 60.0, restart_timeout: float = 90.0,
                 say: Callable[[str], None] = _say) -> None:
        now = time.monotonic()
        self.watched = [_Watched(service, ready_at=now) for service in services]
        self.cancel = cancel
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.healthy_after = healthy_after
        self.restart_timeout = restart_timeout
        self.say = say

    def poll(self) -> list[ServiceProcess]:
        """Notices the services that exited and restarts those whose delay is over; returns the restarted."""
        restarted = []
        for watched in self.watched:
            if self.cancel.is_set():
                break
            service = watched.service
            if watched.due is None:
                if not service.running:
                    self._schedule(watched, "exited")
            elif time.monotonic() >= watched.due:
                began = time.monotonic()
                if service.restart(self.restart_timeout, self.cancel):
                    watched.ready_at, watched.due = time.monotonic(), None
                    self.say(f"{service.name} restarted: pid {service.pid}, ready in "
                             f"{watched.ready_at - began:.1f} s")
                    restarted.append(service)
                elif not self.cancel.is_set():
                    self._schedule(watched, "did not start again")
        return restarted

    def _schedule(self, watched: _Watched, what: str) -> None:
        now = time.monotonic()
        if watched.ready_at is not None and now - watched.ready_at >= self.healthy_after:
            watched.failures = 0
        delay = min(self.max_delay, self.first_delay * 2 ** min(watched.failures, 32))
        watched.failures += 1
        watched.ready_at, watched.due = None, now + delay
        service = watched.service
        self.say(f"{service.name} {what} ({service.exit_status}; log {service.log}); restarting in {delay:g} s")
