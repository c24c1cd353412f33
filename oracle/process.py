"""An oracle node as a child process (`python -m oracle`), configured through its environment: for the
one-command local network and the benchmarks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omnitensor.process import ServiceProcess, settings_env
from oracle.settings import NodeSettings


class NodeProcess(ServiceProcess):
    def __init__(self, settings: NodeSettings, log: Path) -> None:
        if not settings.metrics_port:
            raise ValueError("a node run as a child process needs its metrics port: its /health says it is ready")
        super().__init__("oracle node", [sys.executable, "-m", "oracle"], {**os.environ, **settings_env(settings)},
                         log, f"http://{settings.metrics_host}:{settings.metrics_port}/health")
