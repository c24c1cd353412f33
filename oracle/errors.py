"""The node's exception tree. A `JobFailure` is a job's fault (bad input, bad model): the job is settled
on-chain as failed with `code`, so its requester is refunded at once. Anything else is the node's own
problem and the job is retried."""

from __future__ import annotations

from enum import IntEnum

from omnitensor.errors import OmniTensorError


class FailureCode(IntEnum):
    """Reason codes posted on-chain with `fail` (documented for requesters; 0 means success)."""

    BAD_INPUT = 1  # the input is not a valid safetensors archive
    INPUT_NAME_MISMATCH = 2  # input names differ from the model's
    INPUT_DTYPE_MISMATCH = 3
    INPUT_SHAPE_MISMATCH = 4
    INPUT_TOO_LARGE = 5
    INPUT_UNAVAILABLE = 6  # a by-reference input could not be fetched or failed its digest
    MODEL_DIGEST_MISMATCH = 7
    MODEL_UNAVAILABLE = 8
    MODEL_LOAD_FAILED = 9  # corrupt file, external data, missing signature
    UNKNOWN_FORMAT = 10
    MODEL_ERROR = 11  # the model raised while running
    OUTPUT_TOO_LARGE = 12


class NodeError(OmniTensorError):
    """Root of the node's own errors."""

    code = "node_error"


class StartupError(NodeError, RuntimeError):
    """The node cannot start; the message says what is missing."""

    code = "startup_error"


class JobFailure(NodeError):
    """A job cannot be run because of its input or its model."""

    code = "job_failed"

    def __init__(self, failure: FailureCode, message: str) -> None:
        self.failure = failure
        super().__init__(f"{failure.name}: {message}")
