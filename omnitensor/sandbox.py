"""The sandbox models load and run in: one child process per model (`python -m omnitensor.sandbox`), with a
memory limit and a wall-clock deadline per load and per batch. A worker that overruns, runs out of memory or dies
is killed and replaced; its batch is re-run job by job so that only the job that did it fails. The node and the
API both load models only through here, so no model or input can take either process down.

The parent and a worker speak over two pipes, in frames of a JSON header and raw byte strings: nothing a worker
sends is unpickled, so even a runtime exploited by a hostile model cannot run code in the parent. Job inputs
cross as the requester's safetensors bytes and are decoded in the worker; outputs come back encoded."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from omnitensor import engines, tensors
from omnitensor.errors import OmniTensorError
from omnitensor.failures import FailureCode, JobFailure

log = logging.getLogger("omnitensor.sandbox")
_HEADER = struct.Struct("<I")
_SIZE = struct.Struct("<Q")
_POLL_S = 0.01
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Limits:
    """Per-worker limits. `memory_bytes` is how much a worker may grow past its start (runtime loaded, no
    model): the model and one batch must fit in it."""

    memory_bytes: int = 4 * 2**30
    load_timeout_s: float = 120.0
    batch_timeout_s: float = 30.0
    max_output_bytes: int = 64 * 2**20
    start_timeout_s: float = 60.0


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is: its device, signature (TensorSpec JSON) and the memory it took in its worker."""

    device: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    memory_bytes: int


@dataclass
class JobResult:
    """One job's result: `output` is the encoded safetensors archive, or `failure` says why there is none.
    `killed_worker` is set when this job alone made a worker overrun or die (the node remembers it)."""

    output: bytes = b""
    failure: FailureCode | None = None
    message: str = ""
    engine_s: float = 0.0
    batch: int = 1
    killed_worker: bool = False


class WorkerLost(JobFailure):
    """The worker overran its deadline or memory, or died; it has been killed."""


class SandboxUnavailable(OmniTensorError, RuntimeError):
    """A worker process could not be started: the host's problem, not the job's (jobs are retried)."""

    code = "sandbox_unavailable"


# ── framing (both sides) ─────────────────────────────────────────────────────
def write_frame(out: BinaryIO, header: dict[str, Any], blobs: list[bytes] = ()) -> None:  # type: ignore[assignment]
    head = json.dumps({**header, "sizes": [len(b) for b in blobs]}).encode()
    out.write(_HEADER.pack(len(head)) + head)
    for blob in blobs:
        out.write(blob)
    out.flush()


def read_frame(source: BinaryIO) -> tuple[dict[str, Any], list[bytes]] | None:
    """The next frame, or None at the end of the stream."""
    size = source.read(_HEADER.size)
    if len(size) < _HEADER.size:
        return None
    head = source.read(_HEADER.unpack(size)[0])
    header = json.loads(head)
    blobs = []
    for n in header.pop("sizes"):
        blob = source.read(n)
        if len(blob) < n:
            return None
        blobs.append(blob)
    return header, blobs


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0  # not Linux, or the process is gone: the deadline still applies


# ── the parent's side ───────────────────────────────────────────────────────
class Worker:
    """One worker process for one model format; loads one model, then runs batches of it."""

    def __init__(self, model_format: int, device: str, limits: Limits) -> None:
        self.limits = limits
        self.model_format = model_format
        self.info: ModelInfo | None = None
        read_fd, child_out = os.pipe()
        child_in, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "omnitensor.sandbox", str(child_in), str(child_out), str(model_format), device,
             str(limits.memory_bytes)],
            pass_fds=(child_in, child_out), stdin=subprocess.DEVNULL, stdout=sys.stderr,
            start_new_session=True,  # a Ctrl-C meant for the node reaches the node, which stops its workers
        )
        os.close(child_in)
        os.close(child_out)
        self._out = os.fdopen(write_fd, "wb")
        self._frames: queue.Queue[tuple[dict[str, Any], list[bytes]] | None] = queue.Queue()
        threading.Thread(target=self._read, args=(os.fdopen(read_fd, "rb"),), daemon=True).start()
        ready = self._reply(limits.start_timeout_s, baseline=None)
        self.device = ready["device"]
        self.baseline_rss = _rss(self.proc.pid) or int(ready.get("rss", 0))

    def _read(self, source: BinaryIO) -> None:
        with source:
            while True:
                try:
                    frame = read_frame(source)
                except (OSError, ValueError):
                    frame = None
                self._frames.put(frame)
                if frame is None:
                    return

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss(self) -> int:
        return _rss(self.proc.pid)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            log.error("engine worker %d did not exit after SIGKILL", self.proc.pid)
        try:
            self._out.close()
        except OSError:
            pass

    def _reply(self, timeout: float, baseline: int | None, blobs: bool = False) -> Any:
        """Waits for the worker's answer, killing it past `timeout` or when it grows `memory_bytes` past
        `baseline`; raises WorkerLost then, or the JobFailure the worker reported."""
        end = time.monotonic() + timeout
        while True:
            try:
                frame = self._frames.get(timeout=_POLL_S)
                break
            except queue.Empty:
                pass
            if baseline is not None and self.rss() - baseline > self.limits.memory_bytes:
                self.kill()
                raise WorkerLost(FailureCode.RESOURCE_LIMIT,
                                 f"the model needed more than {self.limits.memory_bytes} bytes of memory")
            if time.monotonic() > end:
                self.kill()
                raise WorkerLost(FailureCode.TIMEOUT, f"no result within {timeout:g} s")
        if frame is None:
            try:  # the pipe closes a moment before the process ends: its own exit status says what happened
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                pass
            self.kill()
            code = self.proc.returncode
            if code == -signal.SIGKILL:  # not ours: the kernel's out-of-memory killer, or the address-space limit
                raise WorkerLost(FailureCode.RESOURCE_LIMIT, "the worker was killed running the model (out of memory)")
            raise WorkerLost(FailureCode.INTERNAL_ERROR, f"the engine worker died (exit status {code})")
        header, data = frame
        if header.get("failure"):
            raise JobFailure(FailureCode(header["failure"]), header.get("message", ""))
        return (header, data) if blobs else header

    def _send(self, header: dict[str, Any], blobs: list[bytes] = ()) -> None:  # type: ignore[assignment]
        try:
            write_frame(self._out, header, blobs)
        except OSError as exc:  # the worker is gone; its reader reports how
            log.debug("engine worker %d: %s", self.proc.pid, exc)

    def load(self, path: Path) -> ModelInfo:
        before = self.rss()
        self._send({"op": "load", "path": str(path)})
        reply = self._reply(self.limits.load_timeout_s, baseline=self.baseline_rss)
        self.info = ModelInfo(reply["device"], reply["inputs"], reply["outputs"], max(self.rss() - before, 0))
        return self.info

    def run(self, payloads: list[bytes]) -> list[JobResult]:
        self._send({"op": "run", "max_output_bytes": self.limits.max_output_bytes}, payloads)
        header, outputs = self._reply(self.limits.batch_timeout_s, baseline=self.baseline_rss, blobs=True)
        return [JobResult(output, FailureCode(r["failure"]) if r["failure"] else None, r["message"], r["engine_s"],
                          r["batch"]) for r, output in zip(header["results"], outputs, strict=True)]


@dataclass
class _Slot:
    key: Any
    worker: Worker | None = None
    busy: bool = False
    failure: JobFailure | None = None
    failed_at: float = 0.0
    high_water: int = field(default=0)


class EnginePool:
    """Workers by model: at most `max_workers` processes, one per model in use, least recently used out first,
    and the models' measured memory (resident growth when loaded) kept under `cache_bytes`. Thread-safe: each
    model runs one batch at a time, different models at once."""

    def __init__(self, limits: Limits, *, device: str = "auto", max_workers: int = 2, cache_bytes: int = 2**62,
                 on_restart: Callable[[str], None] | None = None) -> None:
        self.limits = limits
        self.device = device
        self.max_workers = max_workers
        self.cache_bytes = cache_bytes
        self._on_restart = on_restart or (lambda reason: None)
        self._slots: OrderedDict[Any, _Slot] = OrderedDict()
        self._cond = threading.Condition()
        self._closed = False
        self.last_progress = time.monotonic()

    def run(self, key: Any, path: Path, model_format: int, payloads: list[bytes]) -> list[JobResult]:
        """Runs jobs (safetensors inputs) on the model at `path`; one result per payload, in order. A failure to
        load the model fails every job with its code. Never raises for anything a model or input does."""
        slot = self._acquire(key)
        try:
            try:
                results = self._run(slot, path, model_format, payloads)
            except WorkerLost as lost:
                if self._closed:  # killed by close(), not by the jobs: they are neither failed nor remembered
                    raise SandboxUnavailable("the engine pool is closing") from lost
                if len(payloads) == 1:
                    results = [JobResult(failure=lost.failure, message=lost.detail, killed_worker=True)]
                else:  # find the job that did it: each alone, on a fresh worker
                    results = [self._run_alone(slot, path, model_format, p) for p in payloads]
            except JobFailure as exc:
                if exc.failure == FailureCode.RESOURCE_LIMIT and len(payloads) > 1:  # whichever input it was, alone
                    results = [self._run_alone(slot, path, model_format, p) for p in payloads]
                else:
                    results = [JobResult(failure=exc.failure, message=exc.detail) for _ in payloads]
            self.last_progress = time.monotonic()
            return results
        finally:
            self._release(slot)

    def _run_alone(self, slot: _Slot, path: Path, model_format: int, payload: bytes) -> JobResult:
        try:
            return self._run(slot, path, model_format, [payload])[0]
        except WorkerLost as lost:
            if self._closed:
                raise SandboxUnavailable("the engine pool is closing") from lost
            return JobResult(failure=lost.failure, message=lost.detail, killed_worker=True)
        except JobFailure as exc:
            return JobResult(failure=exc.failure, message=exc.detail)

    def _ensure(self, slot: _Slot, path: Path, model_format: int) -> Worker:
        """The slot's worker with the model loaded: started and loaded now if it is not."""
        if slot.worker is not None and slot.worker.alive:
            return slot.worker
        slot.worker = None
        if slot.failure is not None and time.monotonic() - slot.failed_at < FAILED_LOAD_TTL_S:
            raise slot.failure
        try:
            worker = Worker(model_format, self.device, self.limits)
        except JobFailure as exc:
            raise SandboxUnavailable(f"cannot start an engine worker: {exc.detail}") from exc
        try:
            info = worker.load(path)
        except JobFailure as exc:
            worker.kill()
            if self._closed:
                raise SandboxUnavailable("the engine pool is closing") from exc
            if isinstance(exc, WorkerLost):
                self._on_restart(exc.failure.name.lower())
            slot.failure, slot.failed_at = JobFailure(exc.failure, exc.detail), time.monotonic()
            raise slot.failure from exc
        slot.failure, slot.worker, slot.high_water = None, worker, worker.rss()
        log.info("loaded %s in worker %d on %s (%d MiB)", path.name[:16], worker.pid, info.device,
                 info.memory_bytes >> 20)
        self._evict()
        return worker

    def _run(self, slot: _Slot, path: Path, model_format: int, payloads: list[bytes]) -> list[JobResult]:
        if self._closed:
            raise SandboxUnavailable("the engine pool is closing")
        worker = self._ensure(slot, path, model_format)
        try:
            results = worker.run(payloads)
        except WorkerLost as lost:
            slot.worker = None
            self._on_restart(lost.failure.name.lower())
            raise
        except JobFailure as exc:  # out of memory in the worker: what it holds now is not worth keeping
            if exc.failure == FailureCode.RESOURCE_LIMIT:
                worker.kill()
                slot.worker = None
                self._on_restart("memory_recycled")
            raise
        # Memory a batch made the runtime take stays with it (arenas, fragmentation): a worker that grew well
        # past its loaded size is replaced, so one large input does not keep its memory for good.
        grown = worker.rss() - slot.high_water
        if any(r.failure == FailureCode.RESOURCE_LIMIT for r in results) or grown > self.limits.memory_bytes // 4:
            worker.kill()
            slot.worker = None
            self._on_restart("memory_recycled")
        return results

    def _acquire(self, key: Any) -> _Slot:
        with self._cond:
            while True:
                if self._closed:
                    raise SandboxUnavailable("the engine pool is closing")
                slot = self._slots.get(key)
                if slot is None and self._workers() >= self.max_workers:
                    idle = [s for s in self._slots.values() if not s.busy and s.worker is not None]
                    if idle:  # least recently used first (the dict is kept in use order)
                        self._stop_slot(idle[0])
                if slot is None and self._workers() < self.max_workers:
                    slot = self._slots[key] = _Slot(key)
                if slot is not None and not slot.busy:
                    slot.busy = True
                    self._slots.move_to_end(key)
                    return slot
                self._cond.wait()

    def _release(self, slot: _Slot) -> None:
        with self._cond:
            slot.busy = False
            if slot.worker is None and slot.failure is None:
                self._slots.pop(slot.key, None)
            self._cond.notify_all()

    def _workers(self) -> int:
        return sum(1 for s in self._slots.values() if s.worker is not None or s.busy)

    def _evict(self) -> None:
        with self._cond:
            loaded = [s for s in self._slots.values() if s.worker is not None and s.worker.info is not None]
            total = sum(s.worker.info.memory_bytes for s in loaded)  # type: ignore[union-attr]
            for s in loaded:
                if total <= self.cache_bytes:
                    break
                if not s.busy:
                    total -= s.worker.info.memory_bytes  # type: ignore[union-attr]
                    self._stop_slot(s)

    def _stop_slot(self, slot: _Slot) -> None:
        if slot.worker is not None:
            slot.worker.kill()
            log.info("stopped the worker of model %s (pool full)", slot.key)
        slot.worker = None
        if not slot.busy:
            self._slots.pop(slot.key, None)

    def memory(self) -> int:
        """Resident bytes of all workers now."""
        with self._cond:
            return sum(s.worker.rss() for s in self._slots.values() if s.worker is not None)

    def close(self) -> None:
        """Kills every worker; batches running now end with SandboxUnavailable, not with job failures."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            for slot in list(self._slots.values()):
                if slot.worker is not None:
                    slot.worker.kill()
                    slot.worker = None
            self._slots.clear()


FAILED_LOAD_TTL_S = 30.0  # a model that failed to load is not loaded again for every job within this time


def validate_model(path: Path, model_format: int, limits: Limits) -> ModelInfo:
    """Loads a model once in a fresh CPU worker, as a node would; returns its signature or raises JobFailure."""
    try:
        worker = Worker(model_format, "cpu", limits)
    except JobFailure as exc:
        raise SandboxUnavailable(f"cannot start an engine worker: {exc.detail}") from exc
    try:
        return worker.load(path)
    finally:
        worker.kill()


# ── the worker's side ───────────────────────────────────────────────────────
def _limit_address_space(memory_bytes: int) -> None:
    """Caps the worker's virtual memory at what it has now plus `memory_bytes`, so an allocation past the limit
    fails in the runtime (an error the job gets) before the parent's resident-memory check has to kill it."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * _PAGE
        resource.setrlimit(resource.RLIMIT_AS, (size + memory_bytes, resource.RLIM_INFINITY))
    except (ImportError, OSError, ValueError):
        pass  # not Linux: the parent's check remains


def _serve(source: BinaryIO, out: BinaryIO, model_format: int, device: str, memory_bytes: int) -> None:
    if model_format == engines.FORMAT_TORCHSCRIPT:
        try:
            import torch

            gpu = device != "cpu" and torch.cuda.is_available()
        except ImportError:
            gpu = False
    else:
        import onnxruntime

        gpu = device != "cpu" and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if not gpu:  # CUDA maps far more address space than it uses: there the parent's resident check is the limit
        _limit_address_space(memory_bytes)
    write_frame(out, {"ready": True, "device": "cuda" if gpu else "cpu"})
    engine, stack = None, False
    while (frame := read_frame(source)) is not None:
        header, blobs = frame
        try:
            if header["op"] == "load":
                engine = engines.load_engine(model_format, Path(header["path"]), device)
                stack = engines.rows_independent(engine)
                write_frame(out, {"device": engine.device, "inputs": [s.to_json() for s in engine.inputs],
                                  "outputs": [s.to_json() for s in engine.outputs], "batchable": stack})
            elif header["op"] == "run" and engine is not None:
                results, outputs = _run_jobs(engine, blobs, header["max_output_bytes"], stack)
                write_frame(out, {"results": results}, outputs)
            else:
                raise JobFailure(FailureCode.INTERNAL_ERROR, f"unexpected request {header.get('op')!r}")
        except JobFailure as exc:
            write_frame(out, {"failure": int(exc.failure), "message": exc.detail})
        except MemoryError:
            write_frame(out, {"failure": int(FailureCode.RESOURCE_LIMIT), "message": "out of memory"})


def _rows(feeds: dict[str, Any]) -> int:
    first = next(iter(feeds.values()), None)
    return max(1, first.shape[0]) if first is not None and first.ndim else 1


def _run_jobs(engine: engines.Engine, payloads: list[bytes], max_output_bytes: int, stack: bool
              ) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Decodes, checks, runs (batched where shapes allow) and encodes jobs; one result dict per payload."""
    results: list[dict[str, Any]] = [{"failure": 0, "message": "", "engine_s": 0.0, "batch": 1} for _ in payloads]
    runnable: list[tuple[int, dict[str, Any]]] = []
    for i, payload in enumerate(payloads):
        try:
            feeds = tensors.decode(payload)
            engines.check_feeds(engine, feeds)
            runnable.append((i, feeds))
        except tensors.UnsupportedDtype as exc:
            results[i].update(failure=int(FailureCode.UNSUPPORTED_DTYPE), message=str(exc))
        except tensors.TensorDecodeError as exc:
            results[i].update(failure=int(FailureCode.BAD_INPUT), message=str(exc))
        except JobFailure as exc:
            results[i].update(failure=int(exc.failure), message=exc.detail)
        except MemoryError:  # a header that decodes to more than the worker may hold
            results[i].update(failure=int(FailureCode.RESOURCE_LIMIT), message="the input needs more memory to "
                              "decode than this node allows")
    started = time.perf_counter()
    ran = engines.run_batch(engine, [feeds for _, feeds in runnable], stack=stack)
    engine_s = time.perf_counter() - started
    rows = [_rows(feeds) for _, feeds in runnable]
    outputs = [b""] * len(payloads)
    for (i, _), result, n in zip(runnable, ran, rows, strict=True):
        if isinstance(result, JobFailure):
            results[i].update(failure=int(result.failure), message=result.detail)
            continue
        share = engine_s * n / sum(rows)  # engine time billed to each job in proportion to its rows
        try:
            payload = tensors.encode(result, metadata={"engine_ms": f"{share * 1000:.3f}", "batch": str(len(ran))})
        except tensors.UnsupportedDtype as exc:
            results[i].update(failure=int(FailureCode.UNSUPPORTED_DTYPE), message=str(exc))
            continue
        if len(payload) > max_output_bytes:
            results[i].update(failure=int(FailureCode.OUTPUT_TOO_LARGE),
                              message=f"outputs of {len(payload)} bytes, above the limit of {max_output_bytes}")
            continue
        outputs[i] = payload
        results[i].update(engine_s=share, batch=len(ran))
    return results, outputs


def main(argv: list[str]) -> None:
    fd_in, fd_out, model_format, device, memory_bytes = argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a worker ends
    with os.fdopen(int(fd_in), "rb") as source, os.fdopen(int(fd_out), "wb") as out:
        _serve(source, out, int(model_format), device, int(memory_bytes))


if __name__ == "__main__":
    main(sys.argv[1:])
