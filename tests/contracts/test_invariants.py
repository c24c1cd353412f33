"""Stateful property test: hypothesis drives the market on anvil with random deposits, withdrawals, jobs,
settlements, refunds, allocations and slashes, and after every step checks the chain against a Python model
of every balance, plus the solvency invariant

    OMNIT held by the market == Σ available + Σ locked + Σ stakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from omnitensor.errors import ContractRevert
from tests.support import OMNIT, Net, job_tuple

USERS = ("alice", "bob", "carol")
NODES = ("node1", "node2")
EVERYONE = USERS + NODES + ("owner",)
MODEL_PRICE = 3 * OMNIT // 100
NODE_PRICE = {"node1": OMNIT // 100, "node2": 2 * OMNIT // 100}
PER_SECOND = OMNIT // 1000
STAKE = 100 * OMNIT
ZERO = b"\x00" * 32


@dataclass
class OpenJob:
    job_id: int
    job: tuple[Any, ...]
    requester: str
    node: str
    fee: int


class MarketMachine(RuleBasedStateMachine):
    net: Net  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        self.snapshot = self.net.snapshot()
        self.available = dict.fromkeys(EVERYONE, 0)
        self.locked = dict.fromkeys(EVERYONE, 0)
        self.stake = dict.fromkeys(NODES, STAKE)
        self.jobs: list[OpenJob] = []
        self.closed: list[OpenJob] = []
        self.allocations: dict[int, tuple[str, str, int, int]] = {}  # id → requester, node, reserved, used

    def teardown(self) -> None:
        self.net.revert_to(self.snapshot)

    def _active(self, node: str) -> bool:
        """A node slashed below the minimum stake takes no new work."""
        return self.stake[node] >= STAKE

    def _expect_revert(self, role: str, fn: Any) -> None:
        with pytest.raises(ContractRevert):
            self.net.send(role, fn)

    @rule(who=st.sampled_from(USERS), amount=st.integers(1, 5 * OMNIT))
    def deposit(self, who: str, amount: int) -> None:
        self.net.send(who, self.net.market.functions.deposit(amount))
        self.available[who] += amount

    @rule(who=st.sampled_from(EVERYONE), amount=st.integers(1, 6 * OMNIT))
    def withdraw(self, who: str, amount: int) -> None:
        if amount > self.available[who]:
            self._expect_revert(who, self.net.market.functions.withdraw(amount))
            return
        self.net.send(who, self.net.market.functions.withdraw(amount))
        self.available[who] -= amount

    @rule(who=st.sampled_from(USERS), node=st.sampled_from(NODES), ttl=st.integers(40, 300))
    def open_job(self, who: str, node: str, ttl: int) -> None:
        fee = MODEL_PRICE + NODE_PRICE[node]
        fn = self.net.market.functions.openJob(1, self.net.addr(node), OMNIT, self.net.now() + ttl, ZERO, b"x")
        if fee > self.available[who] or not self._active(node):
            self._expect_revert(who, fn)
            return
        args = self.net.event(self.net.send(who, fn), "JobOpened")
        self.jobs.append(OpenJob(args["jobId"], job_tuple(args), who, node, fee))
        self.available[who] -= fee
        self.locked[who] += fee

    def _settled(self, job: OpenJob, settler: str, failed: bool) -> None:
        self.jobs.remove(job)
        self.closed.append(job)
        self.locked[job.requester] -= job.fee
        if failed:
            self.available[job.requester] += job.fee
        else:
            self.available[settler] += job.fee - MODEL_PRICE
            self.available["owner"] += MODEL_PRICE

    def _live(self, jobs: list[OpenJob]) -> list[OpenJob]:
        """Jobs safely before their deadline. The chain's clock follows the wall clock, so this is decided
        after drawing: what hypothesis draws must not depend on time."""
        now = self.net.now()
        return [j for j in jobs if j.job[6] >= now + 2]

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), failed=st.booleans())
    def settle_one(self, data: st.DataObject, failed: bool) -> None:
        job = data.draw(st.sampled_from(self.jobs))
        if not self._live([job]):
            return
        f = self.net.market.functions
        fn = f.fail(job.job_id, job.job, 7) if failed else f.fulfil(job.job_id, job.job, ZERO, b"y")
        self.net.send(job.node, fn)
        self._settled(job, job.node, failed)

    @rule(node=st.sampled_from(NODES), failures=st.lists(st.booleans(), min_size=1, max_size=6))
    def settle_batch(self, node: str, failures: list[bool]) -> None:
        mine = [j for j in self._live(self.jobs) if j.node == node][: len(failures)]
        if not mine:
            return
        entries = [(j.job_id, j.job, 9 if failed else 0, ZERO, b"z") for j, failed in zip(mine, failures, strict=False)]
        self.net.send(node, self.net.market.functions.settleBatch(entries))
        for j, failed in zip(mine, failures, strict=False):
            self._settled(j, node, failed)

    @precondition(lambda self: self.closed)
    @rule(data=st.data())
    def settle_again_is_rejected(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self.closed))
        self._expect_revert(job.node, self.net.market.functions.fulfil(job.job_id, job.job, ZERO, b"again"))
        self._expect_revert("bob", self.net.market.functions.refund(job.job_id, job.job))

    @rule(seconds=st.integers(1, 200))
    def advance_time(self, seconds: int) -> None:
        self.net.advance(seconds)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self.jobs))
        fn = self.net.market.functions.refund(job.job_id, job.job)
        now, deadline = self.net.now(), job.job[6]
        if now + 2 <= deadline:  # still before the deadline when mined
            self._expect_revert("carol", fn)
        elif now > deadline:
            self.net.send("carol", fn)
            self._settled(job, "carol", failed=True)
        # else: the next block's timestamp may land on either side of the deadline; nothing to check

    @rule(who=st.sampled_from(USERS), node=st.sampled_from(NODES), seconds=st.integers(1, 3000))
    def open_allocation(self, who: str, node: str, seconds: int) -> None:
        fn = self.net.market.functions.openAllocation(self.net.addr(node), seconds, 1000)
        if seconds * PER_SECOND > self.available[who] or not self._active(node):
            self._expect_revert(who, fn)
            return
        allocation_id = self.net.event(self.net.send(who, fn), "AllocationOpened")["allocationId"]
        self.allocations[allocation_id] = (who, node, seconds, 0)
        self.available[who] -= seconds * PER_SECOND
        self.locked[who] += seconds * PER_SECOND

    @precondition(lambda self: self.allocations)
    @rule(data=st.data())
    def report_usage(self, data: st.DataObject) -> None:
        allocation_id = data.draw(st.sampled_from(sorted(self.allocations)))
        who, node, reserved, used = self.allocations[allocation_id]
        new_used = data.draw(st.integers(used, reserved))
        fn = self.net.market.functions.reportUsage(allocation_id, new_used)
        expires_at = self.net.call(self.net.market.functions.getAllocation(allocation_id))[8]
        now = self.net.now()
        if now >= expires_at:
            self._expect_revert(node, fn)
        elif now + 2 < expires_at:  # clear of the expiry: the chain's clock follows the wall clock
            self.net.send(node, fn)
            self.allocations[allocation_id] = (who, node, reserved, new_used)

    @precondition(lambda self: self.allocations)
    @rule(data=st.data())
    def close_allocation(self, data: st.DataObject) -> None:
        allocation_id = data.draw(st.sampled_from(sorted(self.allocations)))
        who, node, reserved, used = self.allocations.pop(allocation_id)
        self.net.send(who, self.net.market.functions.closeAllocation(allocation_id))
        self.locked[who] -= reserved * PER_SECOND
        self.available[who] += (reserved - used) * PER_SECOND
        self.available[node] += used * PER_SECOND
        self._expect_revert(who, self.net.market.functions.closeAllocation(allocation_id))

    @rule(node=st.sampled_from(NODES), amount=st.integers(1, 5 * OMNIT))
    def slash(self, node: str, amount: int) -> None:
        fn = self.net.market.functions.slash(self.net.addr(node), amount)
        if amount > self.stake[node]:
            self._expect_revert("admin", fn)
            return
        self.net.send("admin", fn)
        self.stake[node] -= amount

    @invariant()
    def balances_match_the_model_and_the_market_is_solvent(self) -> None:
        net = self.net
        total = 0
        for role in EVERYONE:
            available, locked = net.deposit_of(role)
            assert (available, locked) == (self.available[role], self.locked[role]), role
            total += available + locked
        for node in NODES:
            stake = net.call(net.market.functions.getNode(net.addr(node)))[0]
            assert stake == self.stake[node]
            total += stake
        assert net.call(net.token.functions.balanceOf(net.manifest.market)) == total
        open_ids = [j.job_id for j in self.jobs]
        assert ZERO not in net.call(net.market.functions.jobCommitments(open_ids))
        closed_ids = [j.job_id for j in self.closed]
        assert set(net.call(net.market.functions.jobCommitments(closed_ids))) <= {ZERO}


def test_market_invariants(net: Net) -> None:
    for node in NODES:
        net.register_node(node, per_job=NODE_PRICE[node], per_second=PER_SECOND)
    net.register_model(price=MODEL_PRICE)
    for user in USERS:
        net.omnit(user, 100 * OMNIT)
        net.send(user, net.token.functions.approve(net.manifest.market, 2**255))
    MarketMachine.net = net
    run_state_machine_as_test(
        MarketMachine,
        settings=settings(max_examples=20, stateful_step_count=25, deadline=None,
                          suppress_health_check=list(HealthCheck)),
    )
