"""Off-chain signatures the contracts accept: ERC-2612 permits for OMNIT and ERC-2771 forward requests for
OpenZeppelin's ERC2771Forwarder (so a relayer can pay the gas of a user's call)."""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount

from omnitensor.chain import Chain

FORWARD_REQUEST_TYPES = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "gas", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint48"},
    {"name": "data", "type": "bytes"},
]
_PERMIT = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


def sign_permit(
    chain: Chain, account: LocalAccount, token: str, spender: str, value: int, deadline: int
) -> tuple[int, bytes, bytes]:
    """(v, r, s) of an ERC-2612 permit for the OMNIT token at `token`."""
    contract = chain.contract("OmniToken", token)
    nonce = chain.call(contract.functions.nonces(account.address))
    domain = {"name": "OmniTensor", "version": "1", "chainId": chain.chain_id, "verifyingContract": token}
    message = {"owner": account.address, "spender": spender, "value": value, "nonce": nonce, "deadline": deadline}
    signed = account.sign_typed_data(domain, {"Permit": _PERMIT}, message)
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def forward_request_domain(chain: Chain, forwarder: str) -> dict[str, Any]:
    """The EIP-712 domain of OmniForwarder (the name given to its constructor)."""
    return {"name": "OmniTensor Forwarder", "version": "1", "chainId": chain.chain_id, "verifyingContract": forwarder}


def sign_forward_request(
    chain: Chain,
    account: LocalAccount,
    forwarder: str,
    to: str,
    data: str | bytes,
    *,
    gas: int,
    deadline: int,
    value: int = 0,
    nonce: int | None = None,
) -> tuple[Any, ...]:
    """A signed `ForwardRequestData` tuple, ready for `OmniForwarder.execute`."""
    if nonce is None:
        contract = chain.contract("OmniForwarder", forwarder)
        nonce = chain.call(contract.functions.nonces(account.address))
    payload = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else data
    domain = forward_request_domain(chain, forwarder)
    message = {"from": account.address, "to": to, "value": value, "gas": gas, "nonce": nonce,
               "deadline": deadline, "data": payload}
    signed = account.sign_typed_data(domain, {"ForwardRequest": FORWARD_REQUEST_TYPES}, message)
    return (account.address, to, value, gas, deadline, payload, bytes(signed.signature))
