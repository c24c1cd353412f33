"""Wallet accounts: they read and upload like everyone, and sign their own writes, which the API relays."""

from __future__ import annotations

from eth_account import Account

from tests.backend.conftest import Api, error
from tests.backend.test_auth import siwe_login, siwe_message
from tests.support import OMNIT


def wallet_session(api: Api):
    wallet = Account.create()
    tokens = siwe_login(api, wallet, siwe_message(api, wallet.address)).json()
    return wallet, {"Authorization": f"Bearer {tokens['access_token']}"}


def test_a_wallet_signs_the_request_the_api_hands_back(api: Api) -> None:
    wallet, headers = wallet_session(api)
    api.net.send("admin", api.net.token.functions.transfer(wallet.address, 5 * OMNIT))
    body = {"to": api.net.addr("bob"), "amount_wei": str(2 * OMNIT)}
    asked = error(api.client.post("/account/transfer", json=body, headers=headers), 428, "wallet_signature_required")
    typed = asked["details"]["typed_data"]
    assert typed["message"]["from"] == wallet.address
    assert typed["domain"]["verifyingContract"] == api.net.manifest.forwarder
    signature = wallet.sign_typed_data(full_message=typed).signature.to_0x_hex()
    relayed = api.client.post("/relay", json={"request": typed["message"], "signature": signature},
                              headers={**headers, "Idempotency-Key": "w-1"})
    assert relayed.status_code == 200, relayed.text
    assert [e["name"] for e in relayed.json()["events"]] == ["Transfer", "ExecutedForwardRequest"]
    assert api.net.call(api.net.token.functions.balanceOf(api.net.addr("bob"))) == 2 * OMNIT
    assert api.net.chain.eth_balance(wallet.address) == 0  # the relayer paid the gas
    # Relaying the same signed request again (new key) is refused: the forwarder's nonce moved on.
    error(api.client.post("/relay", json={"request": typed["message"], "signature": signature}, headers=headers),
          422, "invalid_signature")
    # A request signed by someone else, or for another sender, is refused.
    mallory = Account.create()
    forged = mallory.sign_typed_data(full_message=typed).signature.to_0x_hex()
    fresh = error(api.client.post("/account/transfer", json=body, headers=headers), 428,
                  "wallet_signature_required")["details"]["typed_data"]
    error(api.client.post("/relay", json={"request": fresh["message"], "signature": forged}, headers=headers), 422,
          "invalid_signature")
    error(api.client.post("/relay", json={"request": {**fresh["message"], "from": mallory.address},
                                          "signature": forged}, headers=headers), 403, "wrong_signer")


def test_custodial_accounts_cannot_use_the_relay_endpoint(api: Api) -> None:
    user = api.account()
    request = {"from": user["address"], "to": api.net.manifest.token, "value": "0", "gas": "100000", "nonce": "0",
               "deadline": "9999999999", "data": "0x"}
    error(api.client.post("/relay", json={"request": request, "signature": "0x" + "11" * 65},
                          headers=user["headers"]), 403, "not_a_wallet_account")
