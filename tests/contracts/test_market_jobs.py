import pytest

from tests.support import OMNIT, Net, reverts

MODEL_PRICE = OMNIT // 50
NODE_PRICE = OMNIT // 100
FEE = MODEL_PRICE + NODE_PRICE
ZERO = b"\x00" * 32


@pytest.fixture
def market(net: Net) -> Net:
    net.register_node("node1")
    net.register_node("node2")
    net.register_model(price=MODEL_PRICE)
    net.fund_deposit("alice", 10 * OMNIT)
    return net


def test_open_job_locks_the_fee_and_emits_the_job(market: Net) -> None:
    net = market
    job_id, job = net.open_job(max_fee=FEE)
    assert job_id >> 64 == int(net.addr("alice"), 16)
    assert job_id & (2**64 - 1) == 0
    assert job[:3] == (net.addr("alice"), net.addr("node1"), net.addr("owner"))
    assert job[4:6] == (MODEL_PRICE, NODE_PRICE)
    assert job[7] == net.now() + 30  # fallbackAt = opening time + assign window
    assert net.deposit_of("alice") == (10 * OMNIT - FEE, FEE)
    commitment = net.call(net.market.functions.hashJob(job))
    assert net.call(net.market.functions.jobCommitments([job_id, job_id + 1])) == (commitment, ZERO)
    second_id, _ = net.open_job()
    assert second_id == job_id + 1


def test_fulfil_pays_node_and_owner(market: Net) -> None:
    net = market
    job_id, job = net.open_job()
    receipt = net.send("node1", net.market.functions.fulfil(job_id, job, ZERO, b"out"))
    assert net.event(receipt, "JobFulfilled") == {
        "jobId": job_id, "node": net.addr("node1"), "outputDigest": ZERO, "output": b"out"}
    assert net.deposit_of("alice") == (10 * OMNIT - FEE, 0)
    assert net.deposit_of("node1") == (NODE_PRICE, 0)
    assert net.deposit_of("owner") == (MODEL_PRICE, 0)
    assert net.call(net.market.functions.jobCommitments([job_id])) == (ZERO,)
    with reverts("MarketJobNotOpen", jobId=job_id):  # never paid twice
        net.send("node1", net.market.functions.fulfil(job_id, job, ZERO, b"out"))
    with reverts("MarketJobNotOpen", jobId=job_id):
        net.send("node1", net.market.functions.fail(job_id, job, 3))


def test_fail_refunds_the_requester_at_once(market: Net) -> None:
    net = market
    job_id, job = net.open_job()
    with reverts("MarketInvalidFailureCode"):
        net.send("node1", net.market.functions.fail(job_id, job, 0))
    receipt = net.send("node1", net.market.functions.fail(job_id, job, 4))
    assert net.event(receipt, "JobFailed") == {"jobId": job_id, "node": net.addr("node1"), "code": 4}
    assert net.deposit_of("alice") == (10 * OMNIT, 0)
    assert net.deposit_of("node1") == (0, 0)


def test_round_robin_assignment(market: Net) -> None:
    net = market
    nodes = [net.open_job(node=None)[1][1] for _ in range(4)]
    assert nodes == [net.addr("node1"), net.addr("node2"), net.addr("node1"), net.addr("node2")]


def test_only_the_assigned_node_settles_until_fallback(market: Net) -> None:
    net = market
    job_id, job = net.open_job()
    with reverts("MarketNotAssignedNode", jobId=job_id, caller=net.addr("node2"), assigned=net.addr("node1"),
                 fallbackAt=job[7]):
        net.send("node2", net.market.functions.fulfil(job_id, job, ZERO, b"x"))
    with reverts("MarketNotAssignedNode"):  # not a node at all
        net.send("bob", net.market.functions.fulfil(job_id, job, ZERO, b"x"))
    net.advance(31)
    with reverts("MarketNotAssignedNode"):  # after fallback, only active nodes
        net.send("bob", net.market.functions.fulfil(job_id, job, ZERO, b"x"))
    net.send("node2", net.market.functions.fulfil(job_id, job, ZERO, b"x"))
    assert net.deposit_of("node2") == (NODE_PRICE, 0)


def test_forged_job_is_rejected(market: Net) -> None:
    net = market
    job_id, job = net.open_job()
    forged = job[:5] + (10 * OMNIT,) + job[6:]  # claim a bigger node fee
    with reverts("MarketJobMismatch", jobId=job_id):
        net.send("node1", net.market.functions.fulfil(job_id, forged, ZERO, b"x"))
    with reverts("MarketJobMismatch", jobId=job_id):
        net.send("bob", net.market.functions.refund(job_id, forged))
    with reverts("MarketJobNotOpen", jobId=job_id + 7):
        net.send("node1", net.market.functions.fulfil(job_id + 7, job, ZERO, b"x"))


def test_refund_only_after_deadline_and_never_settle_after(market: Net) -> None:
    net = market
    job_id, job = net.open_job(ttl=100)
    with reverts("MarketJobNotExpired", jobId=job_id, deadline=job[6]):
        net.send("bob", net.market.functions.refund(job_id, job))
    net.advance(101)
    with reverts("MarketJobExpired", jobId=job_id, deadline=job[6]):
        net.send("node1", net.market.functions.fulfil(job_id, job, ZERO, b"x"))
    receipt = net.send("bob", net.market.functions.refund(job_id, job))  # anyone, for the requester
    assert net.event(receipt, "JobRefunded") == {"jobId": job_id, "requester": net.addr("alice"), "amount": FEE}
    assert net.deposit_of("alice") == (10 * OMNIT, 0)
    with reverts("MarketJobNotOpen", jobId=job_id):
        net.send("bob", net.market.functions.refund(job_id, job))


def test_settle_batch_mixes_outcomes_and_skips_closed_jobs(market: Net) -> None:
    net = market
    jobs = [net.open_job() for _ in range(4)]
    (id0, job0), (id1, job1), (id2, job2), (id3, job3) = jobs
    net.send("node1", net.market.functions.fulfil(id3, job3, ZERO, b"done"))  # settled before the batch
    receipt = net.send("node1", net.market.functions.settleBatch([
        (id0, job0, 0, ZERO, b"a"), (id1, job1, 5, ZERO, b""), (id2, job2, 0, b"\x01" * 32, b"blob://out"),
        (id3, job3, 0, ZERO, b"again"),
    ]))
    assert [e.args["jobId"] for e in net.logs(receipt, "JobFulfilled")] == [id0, id2]
    assert [e.args["jobId"] for e in net.logs(receipt, "JobFailed")] == [id1]
    assert net.deposit_of("alice") == (10 * OMNIT - 3 * FEE, 0)
    assert net.deposit_of("node1") == (3 * NODE_PRICE, 0)
    assert net.deposit_of("owner") == (3 * MODEL_PRICE, 0)


def test_settle_batch_reverts_whole_on_foreign_job(market: Net) -> None:
    net = market
    id0, job0 = net.open_job()
    id1, job1 = net.open_job(node="node2")
    with reverts("MarketNotAssignedNode", jobId=id1):
        net.send("node1", net.market.functions.settleBatch([(id0, job0, 0, ZERO, b""), (id1, job1, 0, ZERO, b"")]))
    assert net.call(net.market.functions.jobCommitments([id0]))[0] != ZERO


def test_open_job_errors_change_nothing(market: Net) -> None:
    net = market
    f = net.market.functions
    now = net.now()
    node1 = net.addr("node1")
    cases = [
        (f.openJob(1, node1, FEE - 1, now + 100, ZERO, b""), "MarketFeeAboveMax", {"fee": FEE, "maxFee": FEE - 1}),
        (f.openJob(9, node1, FEE, now + 100, ZERO, b""), "MarketUnknownModel", {"modelId": 9}),
        (f.openJob(1, net.addr("bob"), FEE, now + 100, ZERO, b""), "MarketNodeNotActive", {"node": net.addr("bob")}),
        (f.openJob(1, node1, FEE, now, ZERO, b""), "MarketInvalidDeadline", {"maxTtl": 7 * 86400}),
        (f.openJob(1, node1, FEE, now + 8 * 86400, ZERO, b""), "MarketInvalidDeadline", {}),
        (f.openJob(1, node1, FEE, now + 100, ZERO, b"x" * 8193), "MarketDataTooLarge",
         {"length": 8193, "maxLength": 8192}),
    ]
    for fn, name, args in cases:
        with reverts(name, **args):
            net.send("alice", fn)
    with reverts("MarketInsufficientDeposit", account=net.addr("bob"), available=0, required=FEE):
        net.send("bob", f.openJob(1, node1, FEE, now + 100, ZERO, b""))
    net.send("owner", net.registry.functions.updateModel(1, MODEL_PRICE, False, "blob://m"))
    with reverts("MarketModelInactive", modelId=1):
        net.send("alice", f.openJob(1, node1, FEE, now + 100, ZERO, b""))
    assert net.deposit_of("alice") == (10 * OMNIT, 0)


def test_output_size_limit(market: Net) -> None:
    net = market
    job_id, job = net.open_job()
    with reverts("MarketDataTooLarge", length=8193):
        net.send("node1", net.market.functions.fulfil(job_id, job, ZERO, b"x" * 8193))


def test_no_active_node(net: Net) -> None:
    net.register_model()
    net.fund_deposit("alice", OMNIT)
    with reverts("MarketNoActiveNode"):
        net.open_job(node=None)


def test_pause_stops_new_jobs_but_not_settlement_or_refunds(market: Net) -> None:
    net = market
    id0, job0 = net.open_job(ttl=100)
    id1, job1 = net.open_job(ttl=100)
    net.send("admin", net.market.functions.pause())
    with reverts("EnforcedPause"):
        net.open_job()
    net.send("node1", net.market.functions.fulfil(id0, job0, ZERO, b"ok"))
    net.advance(101)
    net.send("alice", net.market.functions.refund(id1, job1))
    assert net.deposit_of("alice") == (10 * OMNIT - FEE, 0)
