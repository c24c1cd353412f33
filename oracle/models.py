"""Models by registry id: fetched by URI, verified against the on-chain SHA-256, loaded into an engine and
kept in a cache bounded in bytes (least recently used out first)."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from omnitensor.blobs import BlobError, BlobStore, DigestMismatch
from omnitensor.chain import Chain
from omnitensor.engines import Engine, load_engine
from omnitensor.failures import FailureCode, JobFailure

log = logging.getLogger(__name__)
FAILURE_TTL_S = 30.0  # a model that failed to load is not fetched again for every job within this time


class ModelCache:
    def __init__(self, chain: Chain, registry_address: str, blobs: BlobStore, *, device: str,
                 capacity_bytes: int, max_model_bytes: int) -> None:
        self._chain = chain
        self._registry = chain.contract("Registry", registry_address)
        self._blobs = blobs
        self._device = device
        self._capacity = capacity_bytes
        self._max_model_bytes = max_model_bytes
        self._engines: OrderedDict[int, tuple[Engine, int]] = OrderedDict()
        self._failures: dict[int, tuple[float, JobFailure]] = {}
        self._lock = threading.Lock()

    def get(self, model_id: int) -> Engine:
        with self._lock:
            if model_id in self._engines:
                self._engines.move_to_end(model_id)
                return self._engines[model_id][0]
            failed = self._failures.get(model_id)
            if failed and time.monotonic() - failed[0] < FAILURE_TTL_S:
                raise failed[1]
        try:
            engine, size = self._load(model_id)
        except JobFailure as exc:
            with self._lock:
                self._failures[model_id] = (time.monotonic(), exc)
            raise
        with self._lock:
            self._engines[model_id] = (engine, size)
            while sum(s for _, s in self._engines.values()) > self._capacity and len(self._engines) > 1:
                evicted, _ = self._engines.popitem(last=False)
                log.info("model cache full: evicted model %s", evicted)
        return engine

    def _load(self, model_id: int) -> tuple[Engine, int]:
        record = self._chain.call(self._registry.functions.getModel(model_id))
        model_format, digest, uri = record[4], record[6], record[7]
        try:
            data = self._blobs.fetch(uri, digest, max_bytes=self._max_model_bytes)
        except DigestMismatch as exc:
            raise JobFailure(FailureCode.MODEL_DIGEST_MISMATCH, str(exc)) from exc
        except BlobError as exc:
            raise JobFailure(FailureCode.MODEL_UNAVAILABLE, str(exc)) from exc
        engine = load_engine(model_format, data, self._device)
        log.info("loaded model %s (%s, %d bytes) on %s", model_id, ["onnx", "torchscript"][model_format],
                 len(data), engine.device)
        return engine, len(data)
