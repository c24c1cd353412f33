"""What a mined transaction means for the backend's records: the events of a relayed transaction's receipt
become job, allocation and upload rows. Idempotent: it runs after a write is mined and again, after a
restart, for transactions that were in flight when the backend stopped."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import select

from backend.db import Allocation, Database, Job, Upload
from backend.network import Network
from omnitensor.chain import Event
from omnitensor.jobs import job_from_event, requester_of


def apply(db: Database, net: Network, account_id: str, address: str, receipt: dict[str, Any], *,
          accepted_at: float | None = None) -> list[Event]:
    events = net.events.decode_all(receipt["logs"])
    tx_hash = receipt["transactionHash"]
    block = int(receipt["blockNumber"], 16)
    now = time.time()
    with db.session() as s:
        for event in events:
            args = event.args
            if event.name == "JobOpened" and requester_of(args["jobId"]) == address:
                if s.get(Job, str(args["jobId"])) is None:
                    s.add(Job(job_id=str(args["jobId"]), account_id=account_id, model_id=args["modelId"],
                              node=args["node"], job_tuple=json.dumps(list(job_from_event(args))),
                              fee_wei=str(args["modelFee"] + args["nodeFee"]), deadline=args["deadline"],
                              request_tx=tx_hash, opened_block=block, accepted_at=accepted_at or now,
                              opened_at=now))
            elif event.name == "AllocationOpened" and args["requester"] == address:
                if s.get(Allocation, args["allocationId"]) is None:
                    s.add(Allocation(allocation_id=args["allocationId"], account_id=account_id, node=args["node"],
                                     open_tx=tx_hash))
            elif event.name == "AllocationClosed":
                row = s.get(Allocation, args["allocationId"])
                if row is not None:
                    row.close_tx = tx_hash
            elif event.name in ("ModelRegistered", "DatasetRegistered") and args["owner"] == address:
                # The upload this registration completes: the account's, same bytes, not registered yet.
                upload = s.scalars(select(Upload).filter_by(
                    account_id=account_id, sha256=args["digest"].hex(), resource_id=None,
                    kind="model" if event.name == "ModelRegistered" else "dataset")).first()
                if upload is not None:
                    upload.resource_id = args["modelId" if event.name == "ModelRegistered" else "datasetId"]
                    upload.tx_hash, upload.block, upload.status = tx_hash, block, "complete"
    return events
