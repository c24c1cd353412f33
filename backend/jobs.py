"""Inference jobs: opening them (relayed), following their settlement on-chain, waking the requests that
wait for them, and refunding those their node let expire.

One watcher thread reads the market's settlement events from a cursor kept in the database, so jobs settled
while the backend was down are caught up after a restart."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

from sqlalchemy import select

from backend.db import Cursor, Database, Job
from backend.network import Network
from backend.settings import ApiSettings
from backend.tensor_json import to_json
from omnitensor import tensors
from omnitensor.blobs import BlobError, BlobStore, FetchPolicy
from omnitensor.chain import Event
from omnitensor.failures import FailureCode

log = logging.getLogger("omnitensor.api.jobs")
SETTLEMENT_EVENTS = ("JobFulfilled", "JobFailed", "JobRefunded")
CURSOR = "settlements"


class JobWatcher:
    def __init__(self, net: Network, db: Database, *, poll: float, idle_poll: float, refund_every: float) -> None:
        self.net = net
        self.db = db
        self.poll = poll
        self.idle_poll = idle_poll
        self.refund_every = refund_every
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-watcher", daemon=True)
        self._topics = [[net.events.topic(n) for n in SETTLEMENT_EVENTS]]

    def start(self) -> None:
        with self.db.session() as s:
            if s.get(Cursor, CURSOR) is None:
                s.add(Cursor(name=CURSOR, block=self.net.chain.block_number()))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)

    async def wait(self, job_id: str, timeout: float) -> bool:
        """True once the job is settled, failed or refunded; False after `timeout` seconds."""
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters.setdefault(job_id, []).append(entry)
        self._wake.set()
        try:
            if self._settled_already(job_id):
                return True
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                waiters = self._waiters.get(job_id, [])
                if entry in waiters:
                    waiters.remove(entry)
                if not waiters:
                    self._waiters.pop(job_id, None)

    def _settled_already(self, job_id: str) -> bool:
        with self.db.session() as s:
            row = s.get(Job, job_id)
            cursor = s.get(Cursor, CURSOR).block  # type: ignore[union-attr]
        if row is None or row.status != "pending":
            return True
        if cursor >= row.opened_block:  # the watcher may have read the settlement before the job's row existed
            self.reconcile([row])
            return self._status(job_id) != "pending"
        return False

    def _status(self, job_id: str) -> str | None:
        with self.db.session() as s:
            row = s.get(Job, job_id)
            return row.status if row else None

    def _run(self) -> None:
        next_refund = time.monotonic() + self.refund_every
        while not self._stop.is_set():
            try:
                self.step()
                if time.monotonic() >= next_refund:
                    next_refund = time.monotonic() + self.refund_every
                    self.reconcile(self._pending(limit=200))
                    self.refund_expired()
            except Exception as exc:  # the chain may be briefly unreachable; keep watching
                log.warning("settlement watcher: %s", exc)
                self._stop.wait(1.0)
            with self._lock:
                busy = bool(self._waiters)
            self._wake.wait(self.poll if busy else self.idle_poll)
            self._wake.clear()

    def step(self) -> int:
        """Applies settlement events of new blocks to the jobs table; returns how many it read."""
        with self.db.session() as s:
            cursor = s.get(Cursor, CURSOR).block  # type: ignore[union-attr]
        head = self.net.chain.block_number()
        if head <= cursor:
            return 0
        logs = self.net.chain.rpc("eth_getLogs", [{"address": self.net.manifest.market, "fromBlock": hex(cursor + 1),
                                                   "toBlock": hex(head), "topics": self._topics}])
        self._apply(self.net.events.decode_all(logs), head)
        return len(logs)

    def _apply(self, events: list[Event], head: int | None = None) -> None:
        changed: list[str] = []
        now = time.time()
        with self.db.session() as s:
            for event in events:
                row = s.get(Job, str(event.args["jobId"]))
                if row is None or row.status != "pending":
                    continue
                row.settle_tx, row.settled_at = event.tx_hash, now
                if event.name == "JobFulfilled":
                    row.status, row.output = "settled", event.args["output"]
                    if event.args["outputDigest"] != b"\x00" * 32:
                        row.output_digest = "0x" + event.args["outputDigest"].hex()
                elif event.name == "JobFailed":
                    row.status, row.failure_code = "failed", event.args["code"]
                else:
                    row.status = "refunded"
                changed.append(row.job_id)
            if head is not None:
                s.get(Cursor, CURSOR).block = head  # type: ignore[union-attr]
        self._notify(changed)

    def reconcile(self, rows: list[Job]) -> None:
        """Reads the settlement of jobs whose commitment is gone from the chain but whose row says pending
        (their row was written after the watcher passed their settlement block: a restart, or a race)."""
        if not rows:
            return
        (commitments,) = self.net.views(("ComputeMarket", "jobCommitments", ([int(r.job_id) for r in rows],)))
        closed = [r for r, c in zip(rows, commitments, strict=True) if c == b"\x00" * 32]
        if not closed:
            return
        ids = ["0x" + int(r.job_id).to_bytes(32, "big").hex() for r in closed]
        logs = self.net.chain.rpc("eth_getLogs", [{
            "address": self.net.manifest.market, "fromBlock": hex(min(r.opened_block for r in closed)),
            "toBlock": "latest", "topics": [self._topics[0], ids]}])
        self._apply(self.net.events.decode_all(logs))

    def _notify(self, job_ids: list[str]) -> None:
        with self._lock:
            for job_id in job_ids:
                for loop, event in self._waiters.get(job_id, []):
                    loop.call_soon_threadsafe(event.set)

    def _pending(self, limit: int) -> list[Job]:
        with self.db.session() as s:
            return list(s.scalars(select(Job).where(Job.status == "pending").order_by(Job.opened_at).limit(limit)))

    def refund_expired(self) -> int:
        """Refunds this backend's jobs whose deadline passed unsettled (anyone may; the relayer pays the gas)."""
        now = self.net.now()
        with self.db.session() as s:
            expired = list(s.scalars(select(Job).where(Job.status == "pending", Job.deadline < now).limit(50)))
        refunded = 0
        for row in expired:
            job = tuple(json.loads(row.job_tuple))
            try:
                self.net.relayer.send(to=self.net.manifest.market,
                                      data=self.net.calldata("ComputeMarket", "refund", int(row.job_id), job))
                refunded += 1
            except Exception as exc:  # settled meanwhile, or the chain refused: the watcher sees what happened
                log.info("refund of job %s not sent: %s", row.job_id, exc)
        return refunded


def job_outputs(row: Job, blobs: BlobStore, settings: ApiSettings) -> tuple[dict[str, Any] | None, float | None,
                                                                          str | None]:
    """A settled job's outputs as JSON tensors, its engine milliseconds, and why the outputs cannot be shown (a
    node names its outputs: they are fetched under the API's fetch policy and checked against their digest)."""
    payload = row.output or b""
    try:
        if row.output_digest:
            policy = FetchPolicy(allow_file=settings.fetch_allow_file, allow_private=settings.fetch_allow_private,
                                 deadline_s=settings.fetch_deadline_s)
            payload = blobs.fetch(payload.decode("utf-8", "replace"), bytes.fromhex(row.output_digest[2:]),
                                  max_bytes=settings.max_output_bytes, policy=policy)
        outputs = to_json(tensors.decode(payload))
    except (BlobError, tensors.TensorDecodeError) as exc:
        log.info("outputs of job %s: %s", row.job_id, exc)
        return None, None, f"the node's outputs cannot be shown: {exc}"
    engine = tensors.metadata(payload).get("engine_ms")
    try:
        engine_ms = float(engine) if engine else None
    except ValueError:
        engine_ms = None
    return outputs, engine_ms, None


def job_view(row: Job, blobs: BlobStore, settings: ApiSettings) -> dict[str, Any]:
    outputs = engine_ms = output_error = None
    if row.status == "settled" and row.output is not None:
        outputs, engine_ms, output_error = job_outputs(row, blobs, settings)
    failure = None
    if row.failure_code is not None:
        try:
            failure = FailureCode(row.failure_code).name
        except ValueError:  # a code from a newer node than this API
            pass
    return {
        "job_id": row.job_id,
        "model_id": row.model_id,
        "status": row.status,
        "node": row.node,
        "outputs": outputs,
        "failure_code": row.failure_code,
        "failure": failure,
        "output_error": output_error,
        "fee_locked_wei": row.fee_wei,
        "fee_charged_wei": row.fee_wei if row.status == "settled" else "0",
        "deadline": row.deadline,
        "request_tx": row.request_tx,
        "settle_tx": row.settle_tx,
        "timings": {
            "accepted_at": row.accepted_at,
            "opened_at": row.opened_at,
            "settled_at": row.settled_at,
            "queued_ms": round((row.opened_at - row.accepted_at) * 1000, 2),
            "engine_ms": engine_ms,
            "onchain_ms": round((row.settled_at - row.opened_at) * 1000, 2) if row.settled_at else None,
        },
    }
