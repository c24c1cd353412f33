from tests.support import OMNIT, Net, reverts

STAKE = 100 * OMNIT


def _info(net: Net, role: str) -> tuple:
    return net.call(net.market.functions.getNode(net.addr(role)))


def test_register_update_and_list(net: Net) -> None:
    net.register_node("node1", per_job=7, per_second=3)
    net.register_node("node2")
    assert _info(net, "node1") == (STAKE, 7, 3, True, 0)
    assert net.call(net.market.functions.activeNodeCount()) == 2
    assert net.call(net.market.functions.getActiveNodes(0, 10)) == (net.addr("node1"), net.addr("node2"))
    assert net.call(net.market.functions.getActiveNodes(1, 10)) == (net.addr("node2"),)
    assert net.call(net.market.functions.getActiveNodes(5, 10)) == ()
    receipt = net.send("node1", net.market.functions.updateNode(9, 4))
    assert net.event(receipt, "NodeUpdated") == {"node": net.addr("node1"), "pricePerJob": 9, "pricePerSecond": 4}
    assert _info(net, "node1")[1:3] == (9, 4)


def test_registration_errors(net: Net) -> None:
    net.omnit("node1", 2 * STAKE)
    net.send("node1", net.token.functions.approve(net.manifest.market, 2 * STAKE))
    with reverts("MarketStakeTooLow", stake=STAKE - 1, minStake=STAKE):
        net.send("node1", net.market.functions.registerNode(STAKE - 1, 1, 1))
    net.send("node1", net.market.functions.registerNode(STAKE, 1, 1))
    with reverts("MarketNodeAlreadyRegistered", node=net.addr("node1")):
        net.send("node1", net.market.functions.registerNode(STAKE, 1, 1))
    for fn in (net.market.functions.updateNode(1, 1), net.market.functions.requestExit(),
               net.market.functions.withdrawStake(), net.market.functions.increaseStake(1)):
        with reverts("MarketNodeNotRegistered", node=net.addr("node2")):
            net.send("node2", fn)
    net.send("admin", net.market.functions.pause())
    with reverts("EnforcedPause"):
        net.send("node2", net.market.functions.registerNode(STAKE, 1, 1))


def test_exit_after_unbonding_delay(net: Net) -> None:
    net.register_node("node1")
    with reverts("MarketStakeLocked", node=net.addr("node1"), unlockAt=0):
        net.send("node1", net.market.functions.withdrawStake())
    receipt = net.send("node1", net.market.functions.requestExit())
    unlock_at = net.event(receipt, "NodeExitRequested")["unlockAt"]
    assert unlock_at == net.now() + 3600
    assert net.call(net.market.functions.activeNodeCount()) == 0
    with reverts("MarketNodeExiting", node=net.addr("node1"), unlockAt=unlock_at):
        net.send("node1", net.market.functions.requestExit())
    with reverts("MarketStakeLocked", node=net.addr("node1"), unlockAt=unlock_at):
        net.send("node1", net.market.functions.withdrawStake())
    net.advance(3600)
    receipt = net.send("node1", net.market.functions.withdrawStake())
    assert net.event(receipt, "NodeExited")["stake"] == STAKE
    assert net.call(net.token.functions.balanceOf(net.addr("node1"))) == STAKE
    assert _info(net, "node1") == (0, 0, 0, False, 0)


def test_exit_keeps_the_active_set_consistent(net: Net) -> None:
    for role in ("node1", "node2", "owner"):
        net.register_node(role)
    net.send("node1", net.market.functions.requestExit())  # swap-and-pop moves the last node into slot 0
    assert set(net.call(net.market.functions.getActiveNodes(0, 10))) == {net.addr("node2"), net.addr("owner")}
    net.send("owner", net.market.functions.requestExit())
    assert net.call(net.market.functions.getActiveNodes(0, 10)) == (net.addr("node2"),)


def test_slash_deactivates_below_minimum_and_top_up_reactivates(net: Net) -> None:
    net.register_node("node1")
    with reverts("AccessControlUnauthorizedAccount"):
        net.send("alice", net.market.functions.slash(net.addr("node1"), 1))
    with reverts("MarketSlashAboveStake", node=net.addr("node1"), amount=STAKE + 1, stake=STAKE):
        net.send("admin", net.market.functions.slash(net.addr("node1"), STAKE + 1))
    with reverts("MarketZeroAmount"):
        net.send("admin", net.market.functions.slash(net.addr("node1"), 0))
    admin_before = net.call(net.token.functions.balanceOf(net.addr("admin")))
    receipt = net.send("admin", net.market.functions.slash(net.addr("node1"), 10 * OMNIT))
    assert net.event(receipt, "NodeSlashed")["stake"] == 90 * OMNIT
    assert net.call(net.token.functions.balanceOf(net.addr("admin"))) == admin_before + 10 * OMNIT
    assert _info(net, "node1")[3] is False
    net.omnit("node1", 10 * OMNIT)
    net.send("node1", net.token.functions.approve(net.manifest.market, 10 * OMNIT))
    with reverts("MarketZeroAmount"):
        net.send("node1", net.market.functions.increaseStake(0))
    receipt = net.send("node1", net.market.functions.increaseStake(10 * OMNIT))
    assert net.event(receipt, "NodeStakeIncreased")["stake"] == STAKE
    assert _info(net, "node1")[:1] + _info(net, "node1")[3:4] == (STAKE, True)
