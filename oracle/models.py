"""Models by registry id: the record read from the registry, the file fetched by its URI under the node's fetch
policy and verified against the on-chain SHA-256. The node never loads a model itself: it hands the file's path
to the sandbox (`omnitensor.sandbox`), whose workers are the model cache."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from omnitensor.blobs import BlobError, BlobStore, BlobTooLarge, DigestMismatch, FetchPolicy
from omnitensor.chain import Chain
from omnitensor.failures import FailureCode, JobFailure

log = logging.getLogger(__name__)
FAILURE_TTL_S = 30.0  # a model that could not be fetched is not fetched again for every job within this time


@dataclass(frozen=True)
class ModelFile:
    model_id: int
    digest: bytes
    model_format: int
    path: Path

    @property
    def key(self) -> tuple[bytes, int]:
        """Models with the same bytes and format share one worker."""
        return (self.digest, self.model_format)


class ModelFiles:
    def __init__(self, chain: Chain, registry_address: str, blobs: BlobStore, *, max_model_bytes: int,
                 policy: FetchPolicy) -> None:
        self._chain = chain
        self._registry = chain.contract("Registry", registry_address)
        self._blobs = blobs
        self._max_model_bytes = max_model_bytes
        self._policy = policy
        self._files: dict[int, ModelFile] = {}
        self._failures: dict[int, tuple[float, JobFailure]] = {}
        self._lock = threading.Lock()

    def get(self, model_id: int) -> ModelFile:
        """The verified file of a model; raises JobFailure (MODEL_UNAVAILABLE, MODEL_DIGEST_MISMATCH,
        UNKNOWN_FORMAT) for the model's own faults, ChainError when the registry cannot be read."""
        with self._lock:
            known = self._files.get(model_id)
            if known is not None and known.path.exists():
                return known
            failed = self._failures.get(model_id)
            if failed and time.monotonic() - failed[0] < FAILURE_TTL_S:
                raise failed[1]
        try:
            found = self._fetch(model_id)
        except JobFailure as exc:
            with self._lock:
                self._failures[model_id] = (time.monotonic(), exc)
            raise
        with self._lock:
            self._files[model_id] = found
        return found

    def _fetch(self, model_id: int) -> ModelFile:
        record = self._chain.call(self._registry.functions.getModel(model_id))
        model_format, digest, uri = record[4], record[6], record[7]
        try:
            path = self._blobs.fetch_path(uri, digest, max_bytes=self._max_model_bytes, policy=self._policy)
        except BlobTooLarge as exc:
            raise JobFailure(FailureCode.MODEL_UNAVAILABLE, f"the model is larger than this node's limit of "
                             f"{self._max_model_bytes} bytes") from exc
        except DigestMismatch as exc:
            if self._blobs.has(digest):  # our own copy is corrupt: a node-side fault worth its own code
                raise JobFailure(FailureCode.MODEL_DIGEST_MISMATCH, str(exc)) from exc
            raise JobFailure(FailureCode.MODEL_UNAVAILABLE, str(exc)) from exc
        except BlobError as exc:
            raise JobFailure(FailureCode.MODEL_UNAVAILABLE, str(exc)) from exc
        log.info("model %s: %s (%d bytes)", model_id, path.name[:16], path.stat().st_size)
        return ModelFile(model_id, digest, model_format, path)
