"""The oracle node: intake (contract events) → worker (batched by model, on the engine) → settler
(batch settlement transactions) → allocation usage reports, plus metrics and health.

Each part is a coroutine of one `OracleNode`; `run_forever` runs them until one fails or `stop` is called."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount

from omnitensor.blobs import BlobError, BlobStore, BlobTooLarge, FetchPolicy, blob_uri
from omnitensor.chain import Chain, EventDecoder, Signer
from omnitensor.engines import cuda_available
from omnitensor.errors import ChainError, ContractRevert
from omnitensor.failures import FailureCode, JobFailure
from omnitensor.jobs import job_from_event
from omnitensor.keys import account_from_key, load_keystore
from omnitensor.manifest import Manifest, default_manifest_path
from omnitensor.paths import DEFAULT_STATE_DIR
from omnitensor.sandbox import EnginePool, JobResult, Limits, SandboxUnavailable
from oracle.errors import StartupError
from oracle.metrics import HealthServer, NodeMetrics
from oracle.models import ModelFiles
from oracle.settings import NodeSettings
from oracle.state import NodeState, StoredJob

log = logging.getLogger("omnitensor.node")
ZERO32 = b"\x00" * 32
MAX_INLINE_OUTPUT = 8192  # the market's MAX_INLINE_BYTES
GIVE_UP_AFTER = 5  # settlement attempts before a job is left to its refund
SHUTDOWN_TIMEOUT_S = 30.0
FRESH_S = 1.0  # a job seen by intake this recently is known open from the events read
EVENTS = ("JobOpened", "AllocationJobOpened", "JobFulfilled", "JobFailed", "JobRefunded")


@dataclass
class Outcome:
    job: StoredJob
    failure: FailureCode | None = None
    output_digest: bytes = ZERO32
    output: bytes = b""
    engine_s: float = 0.0
    queue_s: float = 0.0
    batch: int = 1

    def settlement(self) -> tuple[Any, ...]:
        code = int(self.failure) if self.failure is not None else 0
        return (self.job.job_id, self.job.job, code, self.output_digest, self.output)


@dataclass
class NodeStatus:
    started_at: float = field(default_factory=time.time)
    last_block: int = 0
    chain_time: int = 0
    device: str = "cpu"


class OracleNode:
    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.metrics = NodeMetrics()
        self.status = NodeStatus()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._in_flight: set[int] = set()
        self._busy_models: set[int] = set()
        self._batches: set[asyncio.Task[None]] = set()
        self._settling: set[asyncio.Task[None]] = set()
        self._settling_jobs: set[int] = set()
        self._waiting_since: float | None = None  # monotonic time runnable jobs started waiting, None when none
        self.health_server: HealthServer | None = None
        # (job id, wall time its settlement receipt arrived, engine seconds): for benchmarks and debugging.
        self.recent: deque[tuple[int, float, float]] = deque(maxlen=100_000)

    # ── lifecycle ────────────────────────────────────────────────────────
    def setup(self) -> None:
        """Connects, checks the deployment and registers the node; raises StartupError saying what is missing."""
        s = self.settings
        self.chain = Chain(s.rpc_url)
        try:
            chain_id = self.chain.chain_id
        except ChainError as exc:
            raise StartupError(f"cannot reach the chain at {s.rpc_url}: {exc}") from exc
        manifest_path = s.manifest or default_manifest_path(chain_id)
        if not manifest_path.exists():
            raise StartupError(f"deployment manifest not found at {manifest_path}; deploy first or set "
                               "OMNITENSOR_NODE_MANIFEST")
        self.manifest = Manifest.load(manifest_path)
        if self.manifest.chain_id != chain_id:
            raise StartupError(f"wrong chain: the manifest is for chain {self.manifest.chain_id}, "
                               f"{s.rpc_url} is chain {chain_id}")
        if not self.manifest.is_live_on(self.chain):
            raise StartupError(f"the contracts of {manifest_path} are not on chain {chain_id}; redeploy")
        self.account = self._load_key()
        self.me = self.account.address
        self.signer = Signer(self.chain, self.account)
        self.market = self.chain.contract("ComputeMarket", self.manifest.market)
        self.token = self.chain.contract("OmniToken", self.manifest.token)
        self.events = EventDecoder("ComputeMarket")
        self._encode_settle_batch = self.chain.encoder("ComputeMarket", "settleBatch")
        self.blobs = BlobStore(s.blob_dir)
        self.state = NodeState(s.state_db or DEFAULT_STATE_DIR / f"node-{self.me.lower()}.db")
        self.models = ModelFiles(self.chain, self.manifest.registry, self.blobs, max_model_bytes=s.max_model_bytes,
                                 policy=self.fetch_policy)
        self.pool = EnginePool(
            Limits(memory_bytes=s.worker_memory_bytes, load_timeout_s=s.load_timeout_s,
                   batch_timeout_s=s.batch_timeout_s, max_output_bytes=s.max_output_bytes),
            device=s.device, max_workers=s.max_workers, cache_bytes=s.model_cache_bytes,
            on_restart=lambda reason: self.metrics.worker_restarts.labels(reason).inc())
        self._register()
        self.status.device = "cuda" if s.device != "cpu" and cuda_available() else "cpu"
        self.metrics.device.labels(self.status.device).set(1)
        log.info("node %s on chain %s, market %s, device %s", self.me, chain_id, self.manifest.market,
                 self.status.device)

    def _load_key(self) -> LocalAccount:
        s = self.settings
        if s.keystore is not None:
            if s.keystore_password is None:
                raise StartupError("set OMNITENSOR_NODE_KEYSTORE_PASSWORD to unlock the node's keystore")
            return load_keystore(s.keystore, s.keystore_password.get_secret_value())
        if s.private_key is not None:
            return account_from_key(s.private_key.get_secret_value())
        raise StartupError("no node key: set OMNITENSOR_NODE_KEYSTORE (+ _PASSWORD), or OMNITENSOR_NODE_PRIVATE_KEY "
                           "for local development")

    def _register(self) -> None:
        s = self.settings
        info = self.chain.call(self.market.functions.getNode(self.me))
        stake, active, unlock_at = info[0], info[3], info[4]
        if active:
            return
        if stake or unlock_at:
            raise StartupError(f"node {self.me} is registered but inactive (stake {stake}, exit unlock at "
                               f"{unlock_at}); top up the stake with increaseStake or use another key")
        if self.chain.eth_balance(self.me) == 0:
            raise StartupError(f"no gas: {self.me} holds no ETH to pay for transactions")
        min_stake = self.chain.call(self.market.functions.minStake())
        want = max(s.stake, min_stake)
        balance = self.chain.call(self.token.functions.balanceOf(self.me))
        if balance < want:
            raise StartupError(f"no stake: {self.me} holds {balance} OMNIT wei, registering needs {want}")
        self.signer.send(self.token.functions.approve(self.manifest.market, want))
        self.signer.send(self.market.functions.registerNode(want, s.price_per_job, s.price_per_second))
        log.info("registered node %s with stake %d", self.me, want)

    async def run_forever(self) -> None:
        await asyncio.to_thread(self._recover)
        tasks = [asyncio.create_task(c) for c in (self._intake_loop(), self._work_loop(), self._usage_loop())]
        stopper = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        # The loops stop themselves between steps: cancelling one would leave its worker thread running
        # against the state file while cleanup closes it. Only a loop stuck past the timeout is cancelled.
        self._stop.set()
        # Batches in the sandbox end now instead of at their deadline; their jobs stay pending for the next run.
        await asyncio.to_thread(self.pool.close)
        await asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT_S)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        for task in done:
            if task is not stopper and task.exception():
                raise task.exception()  # type: ignore[misc]

    async def start_health(self) -> None:
        if self.settings.metrics_port:
            self.health_server = HealthServer(self.metrics, self.health, self.settings.metrics_host,
                                              self.settings.metrics_port, blob_path=self.blobs.path)
            await self.health_server.start()

    def stop(self) -> None:
        self._stop.set()

    async def cleanup(self) -> None:
        if self.health_server:
            await self.health_server.stop()
        self.pool.close()
        self.state.close()

    @property
    def fetch_policy(self) -> FetchPolicy:
        s = self.settings
        return FetchPolicy(allow_file=s.fetch_allow_file, allow_private=s.fetch_allow_private,
                           deadline_s=s.fetch_deadline_s)

    def stalled_s(self) -> float:
        """Seconds jobs have waited with no batch finished (0 when nothing waits)."""
        if self._waiting_since is None:
            return 0.0
        return time.monotonic() - max(self._waiting_since, self.pool.last_progress)

    def health(self) -> dict[str, Any]:
        """`degraded` when jobs wait and no engine worker finished a batch within a load plus a batch deadline."""
        s = self.settings
        stalled = self.stalled_s()
        status = "degraded" if stalled > s.load_timeout_s + s.batch_timeout_s else "ok"
        return {"status": status, "stalled_s": round(stalled, 1), "workers_memory_bytes": self.pool.memory(),
                "node": self.me, "chain_id": self.manifest.chain_id,
                "last_block": self.status.last_block, "device": self.status.device,
                "jobs": self.state.job_counts(), "uptime_s": round(time.time() - self.status.started_at, 1)}

    # ── recovery ─────────────────────────────────────────────────────────
    def _recover(self) -> None:
        """Re-sends settlement transactions signed before a crash; their jobs stay pending in the state file
        and the worker finds them closed on-chain, so nothing is settled (or paid for) twice."""
        for tx_hash, raw, nonce in self.state.unmined_txs():
            try:
                self.signer.rebroadcast(raw)
            except ChainError as exc:
                log.warning("re-sending %s failed: %s", tx_hash, exc)
            receipt = self.chain.wait_for_receipt(tx_hash, timeout=10)
            if receipt is not None:
                self.state.nonce_mined(nonce)
                log.info("recovered settlement %s (block %s)", tx_hash, int(receipt["blockNumber"], 16))
        self.signer.nonces.resync()

    # ── intake ───────────────────────────────────────────────────────────
    async def _pause(self, seconds: float) -> None:
        """Sleeps, waking early when the node is stopped."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def _intake_loop(self) -> None:
        while not self._stop.is_set():
            try:
                found = await asyncio.to_thread(self.poll_once)
            except ChainError as exc:
                log.warning("intake: %s", exc)
                found = 0
            except Exception:  # a fault of ours must not stop the node; the same range is read again
                log.exception("intake failed; retrying")
                found = 0
            if found:
                self._wake.set()
            else:
                await self._pause(self.settings.poll_interval)

    def poll_once(self) -> int:
        """Reads the next range of market events; returns how many were handled."""
        s = self.settings
        cursor = self.state.cursor()
        if cursor is None:
            start = self.manifest.deployment_block - 1
            cursor = (start, self.chain.get_block(start)["hash"])
            self.state.set_cursor(*cursor)
        block, block_hash = cursor
        # One round trip: the head, the block under the cursor (reorg check) and the next range of logs.
        topics = [[self.events.topic(name) for name in EVENTS]]
        latest, at_cursor, logs = self.chain.batch_rpc([
            ("eth_getBlockByNumber", ["latest", False]),
            ("eth_getBlockByNumber", [hex(block), False]),
            # From the cursor's own block, which exists (some nodes refuse a range starting past the head).
            ("eth_getLogs", [{"address": self.manifest.market, "fromBlock": hex(block),
                              "toBlock": hex(block + s.max_block_range), "topics": topics}]),
        ])
        self.status.chain_time = int(latest["timestamp"], 16)
        if at_cursor is None or at_cursor["hash"] != block_hash:
            self._rewind(block)
            return 1
        latest_number = int(latest["number"], 16)
        head = latest_number - s.confirmations
        if head <= block:
            return 0
        to = min(head, block + s.max_block_range)
        to_hash = latest["hash"] if to == latest_number else self.chain.get_block(to)["hash"]
        logs = [entry for entry in logs if block < int(entry["blockNumber"], 16) <= to]
        if any(entry["blockNumber"] == hex(to) and entry["blockHash"] != to_hash for entry in logs):
            return 0  # the chain moved under us between the reads; read again
        with self.state.exclusive():  # the worker sees all of a range's jobs at once, so they share batches
            for event in self.events.decode_all(logs):
                self._handle(event)
            self.state.set_cursor(to, to_hash)
        self.status.last_block = to
        self.metrics.last_block.set(to)
        return max(1, len(logs)) if logs else 0

    def _rewind(self, block: int) -> None:
        target = max(self.manifest.deployment_block - 1, block - self.settings.reorg_depth)
        reopened = self.state.rewind(target + 1)
        self.state.set_cursor(target, self.chain.get_block(target)["hash"])
        self.signer.nonces.resync()  # our own transactions may have been dropped with the blocks
        self.metrics.reorgs.inc()
        log.warning("reorg noticed at block %d: re-reading from %d (%d jobs re-checked)", block, target + 1, reopened)

    def _handle(self, event: Any) -> None:
        a = event.args
        if event.name == "JobOpened":
            self.state.add_job(a["jobId"], a["node"], a["modelId"], job_from_event(a), a["inputDigest"], a["input"],
                               a["fallbackAt"], a["deadline"], event.block_number)
        elif event.name == "AllocationJobOpened":
            self.state.set_allocation(a["jobId"], a["allocationId"])
        else:
            outcome = {"JobFulfilled": "fulfilled", "JobFailed": "failed", "JobRefunded": "refunded"}[event.name]
            self.state.close_jobs([a["jobId"]], outcome, event.block_number)

    # ── worker ───────────────────────────────────────────────────────────
    async def _work_loop(self) -> None:
        """Starts one batch per model at a time, up to `max_workers` models at once, so that a slow model holds up
        only its own jobs."""
        s = self.settings
        while not self._stop.is_set():
            now = self.status.chain_time or int(time.time())
            self.state.expire(now)
            jobs = [j for j in self.state.runnable(self.me, now, s.fallback_grace, s.max_batch * 8)
                    if j.job_id not in self._in_flight]
            waiting = bool(jobs) or bool(self._batches)
            if not waiting:
                self._waiting_since = None
            elif self._waiting_since is None:
                self._waiting_since = time.monotonic()
            in_flight = [t for t in self._settling if not t.done()]
            if len(in_flight) >= s.max_pending_settlements:
                # Adaptive batching: while settlements are in flight, new jobs gather into the next, larger batch
                # (one settlement transaction for many jobs) instead of one small transaction each.
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                await asyncio.sleep(0)  # let the finished tasks' callbacks release their jobs
                continue
            by_model: dict[int, list[StoredJob]] = defaultdict(list)
            for job in jobs:
                if job.model_id not in self._busy_models:
                    by_model[job.model_id].append(job)
            started = False
            for model_id, group in by_model.items():
                if len(self._batches) >= s.max_workers:
                    break
                batch = group[:s.max_batch]
                self._busy_models.add(model_id)
                self._in_flight.update(j.job_id for j in batch)
                task = asyncio.create_task(self._run_batch(batch))
                self._batches.add(task)
                task.add_done_callback(lambda t, b=batch: self._batch_done(t, b))
                started = True
            if not started:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=max(s.poll_interval, 0.05))
                except TimeoutError:
                    pass
        if self._batches:
            await asyncio.wait(self._batches, timeout=SHUTDOWN_TIMEOUT_S)

    async def _run_batch(self, batch: list[StoredJob]) -> None:
        try:
            outcomes = await asyncio.to_thread(self.process, batch)
        except (ChainError, SandboxUnavailable) as exc:  # the node's own trouble: the jobs are tried again
            log.warning("batch of jobs %s not run: %s", [str(j.job_id) for j in batch], exc)
            self.state.bump_attempts([j.job_id for j in batch], GIVE_UP_AFTER)
            await self._pause(1.0)
            return
        except Exception:  # a fault of ours on this batch must not stop the node, nor leave the jobs open forever
            log.exception("batch of jobs %s failed inside the node", [str(j.job_id) for j in batch])
            outcomes = [Outcome(j, FailureCode.INTERNAL_ERROR) for j in batch]
        if outcomes:
            task = asyncio.create_task(asyncio.to_thread(self._settle, outcomes))
            self._settling.add(task)
            settled = [o.job for o in outcomes]
            self._settling_jobs.update(j.job_id for j in settled)
            task.add_done_callback(lambda t: self._settled(t, settled))

    def _batch_done(self, task: asyncio.Task[None], batch: list[StoredJob]) -> None:
        self._batches.discard(task)
        self._busy_models.discard(batch[0].model_id)
        self._in_flight.difference_update(j.job_id for j in batch if j.job_id not in self._settling_jobs)
        self._wake.set()

    def _settled(self, task: asyncio.Task[None], batch: list[StoredJob]) -> None:
        self._settling.discard(task)
        self._settling_jobs.difference_update(j.job_id for j in batch)
        self._in_flight.difference_update(j.job_id for j in batch)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("settlement failed: %s", task.exception())
            self.state.bump_attempts([j.job_id for j in batch], GIVE_UP_AFTER)

    def process(self, batch: list[StoredJob]) -> list[Outcome]:
        """Runs one model's jobs (still open on-chain) as one engine batch in the sandbox; returns their outcomes.

        Whether a job is open is known from the market's events up to the intake cursor; jobs seen more than
        FRESH_S ago (restarts, fallback pick-ups, retries) are checked on-chain first, so no GPU time goes to
        a job another node or a refund already closed. Settlement is simulated before sending in any case.
        A job that once made an engine worker overrun or die is failed with its code without running again."""
        stale = [j for j in batch if time.time() - j.seen_at > FRESH_S or j.node != self.me]
        if stale:
            commitments = self.chain.call(self.market.functions.jobCommitments([j.job_id for j in stale]))
            closed = {j.job_id for j, c in zip(stale, commitments, strict=True) if c == ZERO32}
            self.state.close_jobs(sorted(closed), "closed-elsewhere")
            batch = [j for j in batch if j.job_id not in closed]
        if not batch:
            return []
        started = time.time()
        outcomes: list[Outcome] = []
        runnable: list[tuple[StoredJob, bytes]] = []
        for job in batch:
            try:
                if job.poisoned is not None:
                    raise JobFailure(FailureCode(job.poisoned), "this job made an engine worker fail before")
                runnable.append((job, self._input_bytes(job)))
            except JobFailure as exc:
                outcomes.append(Outcome(job, exc.failure, queue_s=started - job.seen_at))
                log.info("job %s: %s", job.job_id, exc)
        if not runnable:
            return outcomes
        try:
            model = self.models.get(batch[0].model_id)
        except JobFailure as exc:
            log.info("model %s: %s", batch[0].model_id, exc)
            return outcomes + [Outcome(j, exc.failure, queue_s=started - j.seen_at) for j, _ in runnable]
        engine_start = time.perf_counter()
        results = self.pool.run(model.key, model.path, model.model_format, [p for _, p in runnable])
        elapsed = time.perf_counter() - engine_start
        self.metrics.engine_seconds.observe(elapsed)
        self.metrics.batch_size.observe(len(runnable))
        for (job, _), result in zip(runnable, results, strict=True):
            outcomes.append(self._outcome(job, result, time.time() - elapsed - job.seen_at))
        return outcomes

    def _outcome(self, job: StoredJob, result: JobResult, queue_s: float) -> Outcome:
        if result.failure is not None:
            log.info("job %s failed: %s: %s", job.job_id, result.failure.name, result.message)
            self.metrics.failures.labels(result.failure.name.lower()).inc()
            if result.killed_worker:  # remembered, so a restarted node fails it on sight instead of running it
                self.state.poison(job.job_id, int(result.failure))
                self.metrics.poisoned_jobs.inc()
            return Outcome(job, result.failure, queue_s=queue_s)
        outcome = Outcome(job, engine_s=result.engine_s, queue_s=queue_s, batch=result.batch)
        if len(result.output) <= MAX_INLINE_OUTPUT:
            outcome.output = result.output
        else:
            digest = self.blobs.put(result.output)
            outcome.output_digest, outcome.output = digest, self.blob_url(digest).encode()
        if job.allocation_id is not None:
            self.state.add_engine_time(job.allocation_id, result.engine_s)
        return outcome

    def blob_url(self, digest: bytes) -> str:
        """Where others can fetch a blob of this node: its public URL when set, else a name in the local store."""
        if self.settings.public_url:
            return f"{self.settings.public_url.rstrip('/')}/blobs/{digest.hex()}"
        return blob_uri(digest)

    def _input_bytes(self, job: StoredJob) -> bytes:
        if job.input_digest == ZERO32:
            return job.input
        try:
            return self.blobs.fetch(job.input.decode("utf-8", "replace"), job.input_digest,
                                    max_bytes=self.settings.max_input_bytes, policy=self.fetch_policy)
        except BlobTooLarge as exc:
            raise JobFailure(FailureCode.INPUT_TOO_LARGE, str(exc)) from exc
        except BlobError as exc:
            raise JobFailure(FailureCode.INPUT_UNAVAILABLE, str(exc)) from exc

    # ── settlement ───────────────────────────────────────────────────────
    def _settle(self, outcomes: list[Outcome]) -> None:
        ids = [o.job.job_id for o in outcomes]
        self._fault_pause(self.settings.pause_before_settle_s, "before settling", ids)
        try:
            data = self._encode_settle_batch([o.settlement() for o in outcomes])
            tx, result = self.signer.simulate(to=self.manifest.market, data=data)
        except ContractRevert as exc:
            log.error("settlement of %s would revert: %s", ids, exc)
            self.state.bump_attempts(ids, GIVE_UP_AFTER)
            return
        if int.from_bytes(result, "big") < len(outcomes):
            # Jobs closed while the engine ran (refund, another node, a reorg): never pay gas for those.
            commitments = self.chain.call(self.market.functions.jobCommitments(ids))
            gone = {j for j, c in zip(ids, commitments, strict=True) if c == ZERO32}
            self.state.close_jobs(sorted(gone), "closed-elsewhere")
            if not gone:  # the others were skipped for their deadline
                gone = {o.job.job_id for o in outcomes if o.job.deadline_passed(self.status.chain_time)}
                self.state.close_jobs(sorted(gone), "expired")
            remaining = [o for o in outcomes if o.job.job_id not in gone]
            if remaining and gone:
                self._settle(remaining)
            elif remaining:
                self.state.bump_attempts([o.job.job_id for o in remaining], GIVE_UP_AFTER)
            return
        receipt = self.signer.send_built(
            tx, before_send=lambda tx_hash, raw, nonce: self.state.record_tx(tx_hash, raw, nonce, ids))
        self._fault_pause(self.settings.pause_after_send_s, "after sending the settlement", ids)
        self.state.nonce_mined(receipt["nonce"])
        block = int(receipt["blockNumber"], 16)
        settled = {e.args["jobId"]: e.name for e in self.events.decode_all(receipt["logs"])
                   if e.name in ("JobFulfilled", "JobFailed")}
        self.metrics.settlement_txs.inc()
        settled_at = time.time()
        for outcome in outcomes:
            job_id = outcome.job.job_id
            result = {"JobFulfilled": "fulfilled", "JobFailed": "failed"}.get(settled.get(job_id, ""), "skipped")
            self.metrics.jobs.labels(result).inc()
            self.metrics.queue_seconds.observe(max(outcome.queue_s, 0))
            self.recent.append((job_id, settled_at, outcome.engine_s))
            log.info(json.dumps({
                "event": "job_settled", "job_id": str(job_id), "model_id": outcome.job.model_id, "outcome": result,
                "failure": outcome.failure.name if outcome.failure is not None else None, "batch": outcome.batch,
                "queue_ms": round(outcome.queue_s * 1000, 2), "engine_ms": round(outcome.engine_s * 1000, 3),
                "tx": receipt["transactionHash"], "block": block,
            }))
        for name, outcome in (("JobFulfilled", "fulfilled"), ("JobFailed", "failed")):
            self.state.close_jobs([j for j in ids if settled.get(j) == name], outcome, block)
        self.state.close_jobs([j for j in ids if j not in settled], "closed-elsewhere", block)

    @staticmethod
    def _fault_pause(seconds: float, where: str, ids: list[int]) -> None:
        if seconds:
            log.warning("fault injection: pausing %.1fs %s of jobs %s", seconds, where, [str(i) for i in ids])
            time.sleep(seconds)

    # ── allocations ──────────────────────────────────────────────────────
    async def _usage_loop(self) -> None:
        while True:
            await self._pause(self.settings.usage_report_interval)
            if self._stop.is_set():
                return
            try:
                await asyncio.to_thread(self.report_usage)
            except Exception:  # the chain or a fault of ours: the next report carries the same cumulative usage
                log.exception("usage report failed; retrying at the next interval")

    def report_usage(self) -> None:
        """Reports each allocation's cumulative GPU-seconds (rounded up, capped at the reservation)."""
        for allocation_id, engine_seconds, reported in self.state.usage_to_report():
            info = self.chain.call(self.market.functions.getAllocation(allocation_id))
            target = min(math.ceil(engine_seconds), info[2])
            if target <= reported:
                continue
            try:
                self.signer.send(self.market.functions.reportUsage(allocation_id, target))
            except ContractRevert as exc:  # closed or expired: nothing more can be billed
                log.warning("usage report for allocation %s refused: %s", allocation_id, exc)
            self.state.set_reported(allocation_id, target)

