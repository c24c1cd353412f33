import pytest

from tests.support import OMNIT, Net, reverts

PER_SECOND = OMNIT // 1000
ZERO = b"\x00" * 32


@pytest.fixture
def market(net: Net) -> Net:
    net.register_node("node1", per_second=PER_SECOND)
    net.register_model(price=OMNIT // 50)
    net.fund_deposit("alice", 10 * OMNIT)
    return net


def _open(net: Net, seconds: int = 600, duration: int = 3600) -> int:
    opened_at = net.now()
    receipt = net.send("alice", net.market.functions.openAllocation(net.addr("node1"), seconds, duration))
    event = net.event(receipt, "AllocationOpened")
    assert opened_at + duration <= event["expiresAt"] <= net.now() + duration
    return int(event["allocationId"])


def test_allocation_lifecycle(market: Net) -> None:
    net = market
    allocation_id = _open(net)
    expires_at = net.now() + 3600
    assert net.deposit_of("alice") == (10 * OMNIT - 600 * PER_SECOND, 600 * PER_SECOND)
    net.send("node1", net.market.functions.reportUsage(allocation_id, 100))
    net.send("node1", net.market.functions.reportUsage(allocation_id, 250))
    info = net.call(net.market.functions.getAllocation(allocation_id))
    assert info == (net.addr("alice"), net.addr("node1"), 600, 250, 350, PER_SECOND, 600 * PER_SECOND,
                    250 * PER_SECOND, expires_at, False)
    receipt = net.send("alice", net.market.functions.closeAllocation(allocation_id))
    assert net.event(receipt, "AllocationClosed") == {
        "allocationId": allocation_id, "usedSeconds": 250, "paid": 250 * PER_SECOND, "refunded": 350 * PER_SECOND}
    assert net.deposit_of("alice") == (10 * OMNIT - 250 * PER_SECOND, 0)
    assert net.deposit_of("node1") == (250 * PER_SECOND, 0)
    with reverts("MarketAllocationClosed", allocationId=allocation_id):
        net.send("node1", net.market.functions.closeAllocation(allocation_id))
    with reverts("MarketAllocationClosed", allocationId=allocation_id):
        net.send("node1", net.market.functions.reportUsage(allocation_id, 300))


def test_usage_reports_are_monotonic_and_bounded(market: Net) -> None:
    net = market
    allocation_id = _open(net)
    net.send("node1", net.market.functions.reportUsage(allocation_id, 100))
    with reverts("MarketUsageDecreased", allocationId=allocation_id, previous=100, reported=99):
        net.send("node1", net.market.functions.reportUsage(allocation_id, 99))
    with reverts("MarketUsageAboveReserved", allocationId=allocation_id, reported=601, reserved=600):
        net.send("node1", net.market.functions.reportUsage(allocation_id, 601))
    with reverts("MarketNotAllocationNode", allocationId=allocation_id, caller=net.addr("alice")):
        net.send("alice", net.market.functions.reportUsage(allocation_id, 200))
    with reverts("MarketUnknownAllocation", allocationId=99):
        net.send("node1", net.market.functions.reportUsage(99, 1))


def test_close_rules(market: Net) -> None:
    net = market
    a1, a2 = _open(net), _open(net, duration=100)
    with reverts("MarketNotAllocationParty", allocationId=a1, caller=net.addr("bob")):
        net.send("bob", net.market.functions.closeAllocation(a1))
    net.send("node1", net.market.functions.closeAllocation(a1))  # the node may close early
    net.advance(101)
    with reverts("MarketAllocationExpired", allocationId=a2):
        net.send("node1", net.market.functions.reportUsage(a2, 1))
    net.send("bob", net.market.functions.closeAllocation(a2))  # anyone after expiry
    assert net.deposit_of("alice") == (10 * OMNIT, 0)
    with reverts("MarketUnknownAllocation", allocationId=77):
        net.send("bob", net.market.functions.closeAllocation(77))
    with reverts("MarketUnknownAllocation", allocationId=77):
        net.call(net.market.functions.getAllocation(77))


def test_open_allocation_errors(market: Net) -> None:
    net = market
    f = net.market.functions
    with reverts("MarketZeroAmount"):
        net.send("alice", f.openAllocation(net.addr("node1"), 0, 100))
    with reverts("MarketInvalidDuration", duration=0):
        net.send("alice", f.openAllocation(net.addr("node1"), 1, 0))
    with reverts("MarketInvalidDuration", duration=91 * 86400, maxDuration=90 * 86400):
        net.send("alice", f.openAllocation(net.addr("node1"), 1, 91 * 86400))
    with reverts("MarketNodeNotActive", node=net.addr("bob")):
        net.send("alice", f.openAllocation(net.addr("bob"), 1, 100))
    with reverts("MarketInsufficientDeposit", available=10 * OMNIT, required=20_000 * PER_SECOND):
        net.send("alice", f.openAllocation(net.addr("node1"), 20_000, 100))
    net.send("admin", f.pause())
    with reverts("EnforcedPause"):
        net.send("alice", f.openAllocation(net.addr("node1"), 1, 100))


def test_jobs_billed_to_an_allocation_lock_only_the_model_fee(market: Net) -> None:
    net = market
    allocation_id = _open(net)
    f = net.market.functions
    receipt = net.send("alice", f.openAllocationJob(allocation_id, 1, OMNIT, net.now() + 600, ZERO, b"in"))
    opened = net.event(receipt, "JobOpened")
    assert net.event(receipt, "AllocationJobOpened") == {"jobId": opened["jobId"], "allocationId": allocation_id}
    assert (opened["node"], opened["nodeFee"], opened["modelFee"]) == (net.addr("node1"), 0, OMNIT // 50)
    with reverts("MarketNotAllocationRequester", allocationId=allocation_id, caller=net.addr("bob")):
        net.send("bob", f.openAllocationJob(allocation_id, 1, OMNIT, net.now() + 600, ZERO, b"in"))
    with reverts("MarketUnknownAllocation", allocationId=5):
        net.send("alice", f.openAllocationJob(5, 1, OMNIT, net.now() + 600, ZERO, b"in"))
