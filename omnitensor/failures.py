"""Why a job failed: the reason codes a node posts on-chain with `fail` (0 means success), and the exception
that carries one. Shared by the node, which settles jobs, and the API, which validates models and inputs in
the same sandbox and shows the codes to requesters.

A code says what was wrong with the job, never what the node's host holds: every way a URI can fail to
yield the right bytes (no such path or host, refused by the fetch policy, wrong digest) is one code."""

from __future__ import annotations

from enum import IntEnum

from omnitensor.errors import OmniTensorError


class FailureCode(IntEnum):
    """Reason codes posted on-chain with `fail` (documented in the README; 0 means success)."""

    BAD_INPUT = 1  # the input is not a valid safetensors archive
    INPUT_NAME_MISMATCH = 2  # input names differ from the model's
    INPUT_DTYPE_MISMATCH = 3  # an input's dtype differs from the model's
    INPUT_SHAPE_MISMATCH = 4  # an input's rank or a fixed dimension differs from the model's
    INPUT_TOO_LARGE = 5  # a by-reference input is above the node's limit
    INPUT_UNAVAILABLE = 6  # a by-reference input could not be fetched, was refused, or failed its digest
    MODEL_DIGEST_MISMATCH = 7  # the model's bytes in the node's own store do not match the registry's digest
    MODEL_UNAVAILABLE = 8  # the model's URI could not be fetched, was refused, or failed its digest
    MODEL_LOAD_FAILED = 9  # corrupt file, external data, missing signature
    UNKNOWN_FORMAT = 10  # a format this node cannot run
    MODEL_ERROR = 11  # the model raised while running
    OUTPUT_TOO_LARGE = 12  # the outputs are above the node's limit
    TIMEOUT = 13  # loading or running took longer than the node's deadline; the worker was killed
    RESOURCE_LIMIT = 14  # loading or running needed more memory than the node's limit; the worker was killed
    UNSUPPORTED_DTYPE = 15  # an input or output dtype the engines cannot carry (BF16, F8 kinds, strings)
    INTERNAL_ERROR = 16  # the engine worker died for a reason the node could not attribute to a limit


class JobFailure(OmniTensorError):
    """A job cannot be run because of its input or its model; `failure` is the code settled on-chain."""

    code = "job_failed"

    def __init__(self, failure: FailureCode, message: str) -> None:
        self.failure = failure
        self.detail = message
        super().__init__(f"{failure.name}: {message}")
