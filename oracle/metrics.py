"""Prometheus metrics, a /health endpoint and the node's blobs (large job outputs, by SHA-256) on one port (one
registry per node, so several nodes can share a process in tests)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
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
        self.failures = Counter("omnitensor_node_job_failures", "Jobs failed, by failure code", ["code"], registry=r)
        self.worker_restarts = Counter("omnitensor_node_worker_restarts",
                                       "Engine workers killed and replaced (timeout, resource_limit, internal_error, "
                                       "memory_recycled)", ["reason"], registry=r)
        self.poisoned_jobs = Counter("omnitensor_node_poisoned_jobs", "Jobs that made an engine worker overrun or "
                                     "die; failed on sight afterwards", registry=r)
        self.device = Gauge("omnitensor_node_device", "Device the engines run on (1 = in use)", ["device"],
                            registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


_BLOB_PATH = re.compile(r"^/blobs/([0-9a-f]{64})$")
_CHUNK = 1 << 20


class HealthServer:
    """GET /metrics (Prometheus text), GET /health (JSON; 503 when degraded) and GET /blobs/<sha256> (the bytes
    of a blob in `blob_path`'s store: outputs too large to settle inline are named here) on host:port."""

    def __init__(self, metrics: NodeMetrics, health: Callable[[], dict[str, Any]], host: str, port: int,
                 blob_path: Callable[[bytes], Path] | None = None) -> None:
        self._metrics = metrics
        self._health = health
        self._blob_path = blob_path
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
            path = request.split()[1].decode("ascii", "replace") if len(request.split()) > 1 else "/"
            blob = _BLOB_PATH.match(path)
            if path == "/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, self._metrics.exposition()
            elif path == "/health":
                health = self._health()
                status = "200 OK" if health.get("status") == "ok" else "503 Service Unavailable"
                ctype, body = "application/json", json.dumps(health).encode()
            elif blob and self._blob_path is not None and self._blob_path(bytes.fromhex(blob[1])).is_file():
                await self._send_file(writer, self._blob_path(bytes.fromhex(blob[1])))
                return
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"not found"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, IndexError, OSError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _send_file(writer: asyncio.StreamWriter, path: Path) -> None:
        with path.open("rb") as f:  # blobs are written atomically and never changed: the size read stays true
            size = path.stat().st_size
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n"
                         "Connection: close\r\n\r\n".encode())
            while chunk := await asyncio.to_thread(f.read, _CHUNK):
                writer.write(chunk)
                await writer.drain()
