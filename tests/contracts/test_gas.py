"""Gas of every user-facing operation, compared with the snapshot in contracts/gas-snapshot.json.

Gas is deterministic on a fresh deployment, so any difference fails the test and shows in review.
Regenerate after an intended change with:  pytest tests/contracts/test_gas.py --update-gas-snapshot
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from omnitensor.chain import gas_used
from omnitensor.paths import CONTRACTS_DIR
from omnitensor.signatures import sign_forward_request, sign_permit
from tests.support import OMNIT, Net, job_tuple

SNAPSHOT = CONTRACTS_DIR / "gas-snapshot.json"
INPUT_128 = bytes(range(128))
# Calldata costs 4 gas per zero byte and 16 per other byte, so deadlines and signatures (which sign
# deadlines) must not follow the wall clock: the chain is moved to a pinned time and deadlines are fixed.
PINNED_TIME = 0x77359400  # 2033-05-18; no zero byte within the few minutes the scenarios take
DEADLINE = PINNED_TIME + 3600
OUTPUT_64 = bytes(range(64))
# Targets from the foundation issue, next to the peers' published figures (their own test suites).
TARGETS = {"openJob_input128": 70_000, "fulfil_output64": 50_000, "settleBatch20_perJob": 25_000}


def _open_job(net: Net, model_id: int, who: str = "alice") -> tuple[int, tuple[Any, ...], dict[str, Any]]:
    receipt = net.send(who, net.market.functions.openJob(
        model_id, net.addr("node1"), 10 * OMNIT, DEADLINE, b"\x00" * 32, INPUT_128))
    args = net.event(receipt, "JobOpened")
    return args["jobId"], job_tuple(args), receipt


def measure(net: Net) -> dict[str, int]:
    """Runs every scenario on a warm market (accounts already exist, as in steady state)."""
    gas: dict[str, int] = {}
    net.chain.rpc("evm_setNextBlockTimestamp", [PINNED_TIME])
    net.chain.rpc("evm_mine", [])
    net.register_node("node1")
    model_id = net.register_model()
    net.omnit("alice", 1000 * OMNIT)
    net.send("alice", net.token.functions.approve(net.manifest.market, 2**255))

    gas["token_transfer"] = gas_used(net.send("alice", net.token.functions.transfer(net.addr("bob"), OMNIT)))
    gas["registerModel"] = gas_used(net.send("owner", net.registry.functions.registerModel(
        b"\x22" * 32, 0, OMNIT // 50, "blob://sha256/22", "digits-mlp")))
    gas["deposit"] = gas_used(net.send("alice", net.market.functions.deposit(100 * OMNIT)))

    net.omnit("bob", 100 * OMNIT)
    v, r, s = sign_permit(net.chain, net.signers["bob"].account, net.manifest.token, net.manifest.market,
                          50 * OMNIT, DEADLINE)
    gas["depositWithPermit"] = gas_used(net.send("bob", net.market.functions.depositWithPermit(
        50 * OMNIT, DEADLINE, v, r, s)))

    # The model owner and the node have earned before: their accounts are warm, as in steady state.
    job_id, job, receipt = _open_job(net, model_id)
    net.send("node1", net.market.functions.fulfil(job_id, job, b"\x00" * 32, OUTPUT_64))
    job_id, job, receipt = _open_job(net, model_id)
    gas["openJob_input128"] = gas_used(receipt)
    gas["fulfil_output64"] = gas_used(net.send("node1", net.market.functions.fulfil(
        job_id, job, b"\x00" * 32, OUTPUT_64)))

    batch = []
    for _ in range(20):
        job_id, job, _receipt = _open_job(net, model_id)
        batch.append((job_id, job, 0, b"\x00" * 32, OUTPUT_64))
    receipt = net.send("node1", net.market.functions.settleBatch(batch))
    assert len(net.logs(receipt, "JobFulfilled")) == 20
    gas["settleBatch20_perJob"] = gas_used(receipt) // 20

    job_id, job, _receipt = _open_job(net, model_id)
    net.advance(DEADLINE + 1 - net.now())
    gas["refund"] = gas_used(net.send("bob", net.market.functions.refund(job_id, job)))

    receipt = net.send("alice", net.market.functions.openAllocation(net.addr("node1"), 3600, 86400))
    gas["openAllocation"] = gas_used(receipt)
    allocation_id = net.event(receipt, "AllocationOpened")["allocationId"]
    net.send("node1", net.market.functions.reportUsage(allocation_id, 10))
    gas["reportUsage"] = gas_used(net.send("node1", net.market.functions.reportUsage(allocation_id, 20)))
    gas["closeAllocation"] = gas_used(net.send("alice", net.market.functions.closeAllocation(allocation_id)))

    # A custodial account with no ETH opens a job through the forwarder; the relayer pays the gas.
    carol = net.signers["carol"].account
    net.fund_deposit("carol", 10 * OMNIT)
    later = DEADLINE + 7200  # the clock is past DEADLINE after the refund
    call = net.market.functions.openJob(model_id, net.addr("node1"), 10 * OMNIT, later, b"\x00" * 32, INPUT_128)
    request = sign_forward_request(net.chain, carol, net.manifest.forwarder, net.manifest.market,
                                   call._encode_transaction_data(), gas=200_000, deadline=later)
    receipt = net.send("relayer", net.forwarder.functions.execute(request))
    assert job_tuple(net.event(receipt, "JobOpened"))[0] == carol.address
    gas["openJob_relayed"] = gas_used(receipt)
    return gas


def test_gas_matches_snapshot(net: Net, request: pytest.FixtureRequest) -> None:
    measured = measure(net)
    if request.config.getoption("--update-gas-snapshot"):
        SNAPSHOT.write_text(json.dumps(measured, indent=2) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    changes = {k: (expected.get(k), v) for k, v in measured.items() if expected.get(k) != v}
    assert not changes, f"gas changed (snapshot, measured): {changes}; regenerate with --update-gas-snapshot"


def test_gas_meets_targets() -> None:
    snapshot = json.loads(SNAPSHOT.read_text())
    misses = {k: (snapshot[k], limit) for k, limit in TARGETS.items() if snapshot[k] > limit}
    assert not misses, f"above target (measured, target): {misses}"


