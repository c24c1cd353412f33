"""Jobs as the market commits to them: the `Job` struct rebuilt from a `JobOpened` event."""

from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address

# The fields of IComputeMarket.Job, in order; all but `requester` are in the JobOpened event.
JOB_FIELDS = ("requester", "node", "modelOwner", "modelId", "modelFee", "nodeFee", "deadline", "fallbackAt")


def requester_of(job_id: int) -> str:
    """Job ids are `requester << 64 | n`."""
    return to_checksum_address((job_id >> 64).to_bytes(20, "big"))


def job_from_event(args: dict[str, Any]) -> tuple[Any, ...]:
    """The `Job` tuple of a decoded JobOpened event, ready to pass back to settle or refund."""
    requester = requester_of(args["jobId"])
    return tuple(requester if field == "requester" else args[field] for field in JOB_FIELDS)
