from omnitensor.signatures import sign_forward_request, sign_permit
from tests.support import OMNIT, Net, reverts


def test_metadata_and_fixed_supply(net: Net) -> None:
    t = net.token.functions
    assert net.call(t.name()) == "OmniTensor"
    assert net.call(t.symbol()) == "OMNIT"
    assert net.call(t.decimals()) == 18
    assert net.call(t.totalSupply()) == 1_000_000_000 * OMNIT
    assert net.call(t.balanceOf(net.addr("admin"))) == 1_000_000_000 * OMNIT
    names = {item.get("name") for item in net.token.abi}
    assert not names & {"mint", "_mint", "burn"}, "the supply must stay fixed after deployment"


def test_transfer_and_insufficient_balance(net: Net) -> None:
    net.omnit("alice", 5 * OMNIT)
    assert net.call(net.token.functions.balanceOf(net.addr("alice"))) == 5 * OMNIT
    with reverts("ERC20InsufficientBalance", balance=5 * OMNIT, needed=6 * OMNIT):
        net.send("alice", net.token.functions.transfer(net.addr("bob"), 6 * OMNIT))


def test_permit_sets_allowance(net: Net) -> None:
    deadline = net.now() + 600
    v, r, s = sign_permit(net.chain, net.signers["alice"].account, net.manifest.token, net.addr("bob"), 7, deadline)
    net.send("carol", net.token.functions.permit(net.addr("alice"), net.addr("bob"), 7, deadline, v, r, s))
    assert net.call(net.token.functions.allowance(net.addr("alice"), net.addr("bob"))) == 7
    with reverts("ERC2612InvalidSigner"):  # the same signature cannot be used twice (nonce moved on)
        net.send("carol", net.token.functions.permit(net.addr("alice"), net.addr("bob"), 7, deadline, v, r, s))


def test_relayed_transfer_is_attributed_to_the_signer(net: Net) -> None:
    """A custodial account with no ETH moves tokens; the relayer pays the gas."""
    net.omnit("alice", 3 * OMNIT)
    alice = net.signers["alice"].account
    call = net.token.functions.transfer(net.addr("bob"), OMNIT)
    request = sign_forward_request(net.chain, alice, net.manifest.forwarder, net.manifest.token,
                                   call._encode_transaction_data(), gas=100_000, deadline=net.now() + 600)
    eth_before = net.chain.eth_balance(alice.address)
    net.send("relayer", net.forwarder.functions.execute(request))
    assert net.call(net.token.functions.balanceOf(net.addr("bob"))) == OMNIT
    assert net.call(net.token.functions.balanceOf(alice.address)) == 2 * OMNIT
    assert net.chain.eth_balance(alice.address) == eth_before
    with reverts("ERC2771ForwarderInvalidSigner"):  # replaying the request fails: the nonce was used
        net.send("relayer", net.forwarder.functions.execute(request))
