"""Running a long-lived command (the local network) in the background of a test, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from omnitensor.paths import ROOT

READY = "press Ctrl-C to stop"


def start(command: str, env: dict[str, str], log: Path, timeout: float = 400) -> tuple[subprocess.Popen[bytes], str]:
    """Starts `command` with bash in its own process group; returns once it printed READY (after what the
    log held before), with its output so far."""
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        proc = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = log.read_bytes()[offset:].decode(errors="replace")
        if READY in text:
            return proc, text
        if proc.poll() is not None:
            raise AssertionError(f"`{command}` exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.5)
    interrupt(proc)
    raise TimeoutError(f"`{command}` not ready in {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def interrupt(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """Ctrl-C: SIGINT to the whole process group, as a terminal sends it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    return proc.wait(timeout)
