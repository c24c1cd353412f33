from omnitensor.signatures import sign_permit
from tests.support import OMNIT, Net, reverts


def test_deposit_and_withdraw(net: Net) -> None:
    net.fund_deposit("alice", 10 * OMNIT)
    assert net.deposit_of("alice") == (10 * OMNIT, 0)
    receipt = net.send("alice", net.market.functions.withdraw(4 * OMNIT))
    assert net.event(receipt, "Withdrawn") == {"account": net.addr("alice"), "amount": 4 * OMNIT}
    assert net.deposit_of("alice") == (6 * OMNIT, 0)
    assert net.call(net.token.functions.balanceOf(net.addr("alice"))) == 4 * OMNIT


def test_deposit_with_permit_needs_no_approval_transaction(net: Net) -> None:
    net.omnit("bob", 5 * OMNIT)
    deadline = net.now() + 600
    v, r, s = sign_permit(net.chain, net.signers["bob"].account, net.manifest.token, net.manifest.market,
                          5 * OMNIT, deadline)
    receipt = net.send("bob", net.market.functions.depositWithPermit(5 * OMNIT, deadline, v, r, s))
    assert net.event(receipt, "Deposited")["amount"] == 5 * OMNIT
    assert net.deposit_of("bob") == (5 * OMNIT, 0)


def test_deposit_with_front_run_permit_still_succeeds(net: Net) -> None:
    net.omnit("bob", 5 * OMNIT)
    deadline = net.now() + 600
    v, r, s = sign_permit(net.chain, net.signers["bob"].account, net.manifest.token, net.manifest.market,
                          5 * OMNIT, deadline)
    # Someone submits the permit first; bob's deposit must not be blocked by it.
    net.send("carol", net.token.functions.permit(net.addr("bob"), net.manifest.market, 5 * OMNIT, deadline, v, r, s))
    net.send("bob", net.market.functions.depositWithPermit(5 * OMNIT, deadline, v, r, s))
    assert net.deposit_of("bob") == (5 * OMNIT, 0)


def test_deposit_errors_change_nothing(net: Net) -> None:
    net.fund_deposit("alice", 2 * OMNIT)
    with reverts("MarketZeroAmount"):
        net.send("alice", net.market.functions.deposit(0))
    with reverts("MarketZeroAmount"):
        net.send("alice", net.market.functions.withdraw(0))
    with reverts("MarketInsufficientDeposit", account=net.addr("alice"), available=2 * OMNIT, required=3 * OMNIT):
        net.send("alice", net.market.functions.withdraw(3 * OMNIT))
    with reverts("ERC20InsufficientAllowance"):
        net.send("alice", net.market.functions.deposit(OMNIT))
    assert net.deposit_of("alice") == (2 * OMNIT, 0)


def test_withdraw_works_while_paused(net: Net) -> None:
    net.fund_deposit("alice", 2 * OMNIT)
    net.send("admin", net.market.functions.pause())
    net.send("alice", net.market.functions.withdraw(2 * OMNIT))
    assert net.deposit_of("alice") == (0, 0)


def test_pause_is_role_gated(net: Net) -> None:
    role = net.call(net.market.functions.PAUSER_ROLE())
    with reverts("AccessControlUnauthorizedAccount", account=net.addr("alice"), neededRole="0x" + role.hex()):
        net.send("alice", net.market.functions.pause())
    net.send("admin", net.market.functions.pause())
    with reverts("EnforcedPause"):
        net.send("admin", net.market.functions.pause())
    net.send("admin", net.market.functions.unpause())
    with reverts("ExpectedPause"):
        net.send("admin", net.market.functions.unpause())
