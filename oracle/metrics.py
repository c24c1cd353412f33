"""Prometheus metrics and a /health endpoint on a local port (one registry per node, so several nodes can
share a process in tests)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Counter("omnitensor_node_jobs", "Jobs settled by this node", ["outcome"], registry=r)
        self.engine_seconds = Histogram("omnitensor_node_engine_seconds", "Engine time per batch", registry=r,
                                        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))
        self.queue_seconds = Histogram("omnitensor_node_queue_seconds", "Time from intake to engine", registry=r)
        self.batch_size = Histogram("omnitensor_node_batch_size", "Jobs per batch", registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64))
        self.settlement_txs = Counter("omnitensor_node_settlement_txs", "Settlement transactions mined", registry=r)
        self.reorgs = Counter("omnitensor_node_reorgs", "Reorgs noticed by intake", registry=r)
        self.last_block = Gauge("omnitensor_node_last_block", "Last block read by intake", registry=r)
        self.device = Gauge("omnitensor_node_device", "Device the engines run on (1 = in use)", ["device"],
                            registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class HealthServer:
    """GET /metrics (Prometheus text) and GET /health (JSON) on host:port."""

    def __init__(self, metrics: NodeMetrics, health: Callable[[], dict[str, Any]], host: str, port: int) -> None:
        self._metrics = metrics
        self._health = health
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            path = request.split()[1].decode() if len(request.split()) > 1 else "/"
            if path == "/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, self._metrics.exposition()
            elif path == "/health":
                status, ctype, body = "200 OK", "application/json", json.dumps(self._health()).encode()
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()
