"""The node's own exception tree. A job's fault (bad input, bad model) is an `omnitensor.failures.JobFailure`:
the job is settled on-chain as failed with its code, so its requester is refunded at once."""

from __future__ import annotations

from omnitensor.errors import OmniTensorError


class NodeError(OmniTensorError):
    """Root of the node's own errors."""

    code = "node_error"


class StartupError(NodeError, RuntimeError):
    """The node cannot start; the message says what is missing."""

    code = "startup_error"
