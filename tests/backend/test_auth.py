"""Sign-in: API keys, token expiry and forgery, refresh-token rotation and reuse, Sign-In with Ethereum."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keyfile import decode_keyfile_json

from backend.db import Account as AccountRow
from backend.db import Database
from backend.security import AUDIENCE, Credentials
from backend.siwe import SiweMessage
from tests.backend.conftest import ADMIN_TOKEN, SECRET, Api, error


def test_api_key_grants_tokens_for_the_account(api: Api) -> None:
    user = api.account()
    r = api.client.get("/account/balance", headers=user["headers"])
    assert r.status_code == 200
    assert r.json()["address"] == user["address"]
    assert r.json()["wallet_wei"] == "0"


def test_bad_credentials_and_missing_tokens_are_refused(api: Api) -> None:
    error(api.client.post("/auth/token", json={"grant_type": "api_key", "api_key": "omt_nope"}), 401,
          "invalid_credentials")
    error(api.client.get("/account/balance"), 401, "missing_token")
    error(api.client.get("/account/balance", headers={"Authorization": "Bearer not.a.jwt"}), 401, "invalid_token")
    error(api.client.post("/admin/accounts", json={}, headers={"Authorization": "Bearer wrong"}), 401,
          "invalid_credentials")
    error(api.client.post("/auth/token", json={"grant_type": "password"}), 422, "validation_error")


def test_expired_forged_and_unsigned_tokens_are_refused(api: Api) -> None:
    user = api.account()
    secret = hashlib.sha256(SECRET.encode()).digest()
    expired_issuer = Credentials(Database(api.settings.database_url), secret, access_ttl=-120, refresh_ttl=60,
                                 scrypt_n=2**10)
    row = AccountRow(id=user["id"], kind="custodial", address=user["address"])
    expired = expired_issuer.issue(row)["access_token"]
    error(api.client.get("/account/balance", headers={"Authorization": f"Bearer {expired}"}), 401, "token_expired")

    now = int(time.time())
    claims = {"sub": user["id"], "addr": user["address"], "kind": "custodial", "typ": "access", "aud": AUDIENCE,
              "iat": now, "exp": now + 600}
    forged = jwt.encode(claims, b"another-server-secret-of-32-bytes!", algorithm="HS256")
    error(api.client.get("/account/balance", headers={"Authorization": f"Bearer {forged}"}), 401, "invalid_token")
    unsigned = jwt.encode(claims, None, algorithm="none")
    error(api.client.get("/account/balance", headers={"Authorization": f"Bearer {unsigned}"}), 401, "invalid_token")
    # A valid token with the claims of another account is still only as good as its signature.
    tampered = forged.rsplit(".", 1)[0] + "." + api.client.post(
        "/auth/token", json={"grant_type": "api_key", "api_key": user["api_key"]}).json()["access_token"].rsplit(".")[2]
    error(api.client.get("/account/balance", headers={"Authorization": f"Bearer {tampered}"}), 401, "invalid_token")


def test_refresh_tokens_rotate_and_reuse_revokes_the_family(api: Api) -> None:
    user = api.account()
    first = user["refresh_token"]
    r = api.client.post("/auth/token", json={"grant_type": "refresh_token", "refresh_token": first})
    assert r.status_code == 200, r.text
    second = r.json()["refresh_token"]
    assert second != first
    assert api.client.get("/account/balance",
                          headers={"Authorization": f"Bearer {r.json()['access_token']}"}).status_code == 200
    # The old token again: refused, and the newer one dies with it.
    error(api.client.post("/auth/token", json={"grant_type": "refresh_token", "refresh_token": first}), 401,
          "refresh_token_reused")
    error(api.client.post("/auth/token", json={"grant_type": "refresh_token", "refresh_token": second}), 401,
          "refresh_token_reused")
    # Another sign-in of the same account is a different family and still works.
    other = api.token(user["api_key"])["refresh_token"]
    assert api.client.post("/auth/token", json={"grant_type": "refresh_token",
                                                "refresh_token": other}).status_code == 200


def siwe_message(api: Api, address: str, **overrides: object) -> SiweMessage:
    nonce = api.client.get("/auth/siwe/nonce").json()
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "domain": nonce["domain"], "address": address, "statement": "Sign in to OmniTensor.", "uri": nonce["uri"],
        "version": "1", "chain_id": nonce["chain_id"], "nonce": nonce["nonce"], "issued_at": now,
        "expiration_time": now + timedelta(minutes=5),
    }
    values.update(overrides)
    return SiweMessage(**values)  # type: ignore[arg-type]


def siwe_login(api: Api, wallet, message: SiweMessage):
    text = message.text()
    signature = wallet.sign_message(encode_defunct(text=text)).signature.to_0x_hex()
    return api.client.post("/auth/token", json={"grant_type": "siwe", "message": text, "signature": signature})


def test_sign_in_with_ethereum_once_per_nonce(api: Api) -> None:
    wallet = Account.create()
    message = siwe_message(api, wallet.address)
    r = siwe_login(api, wallet, message)
    assert r.status_code == 200, r.text
    assert r.json()["account"] == {"id": r.json()["account"]["id"], "kind": "wallet", "address": wallet.address}
    balance = api.client.get("/account/balance", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert balance.json()["address"] == wallet.address
    # The same signed message again is a replay.
    error(siwe_login(api, wallet, message), 401, "siwe_nonce_invalid")
    # Signing in again with a new nonce finds the same account.
    again = siwe_login(api, wallet, siwe_message(api, wallet.address))
    assert again.json()["account"]["id"] == r.json()["account"]["id"]


def test_sign_in_with_ethereum_checks_chain_domain_expiry_and_signer(api: Api) -> None:
    wallet = Account.create()
    error(siwe_login(api, wallet, siwe_message(api, wallet.address, chain_id=1)), 401, "siwe_wrong_chain")
    error(siwe_login(api, wallet, siwe_message(api, wallet.address, domain="evil.example")), 401, "siwe_wrong_domain")
    past = datetime.now(UTC) - timedelta(hours=1)
    error(siwe_login(api, wallet, siwe_message(api, wallet.address, issued_at=past - timedelta(minutes=5),
                                               expiration_time=past)), 401, "siwe_expired")
    other = Account.create()
    error(siwe_login(api, other, siwe_message(api, wallet.address)), 401, "invalid_signature")
    error(siwe_login(api, wallet, siwe_message(api, wallet.address, nonce="neverissued123")), 401,
          "siwe_nonce_invalid")
    text = siwe_message(api, wallet.address).text().replace("Version: 1", "Version: 2")
    error(api.client.post("/auth/token", json={"grant_type": "siwe", "message": text, "signature": "0x" + "11" * 65}),
          401, "siwe_invalid_message")


def test_admin_endpoint_needs_its_token(api: Api) -> None:
    r = api.client.post("/admin/accounts", json={"label": "x"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 201
    assert r.json()["api_key"].startswith("omt_")
    error(api.client.post("/admin/accounts", json={"label": "x"}), 401, "invalid_credentials")


def test_custodial_keys_are_encrypted_at_rest_and_never_returned(api: Api) -> None:
    user = api.account()
    db = Database(api.settings.database_url)
    with db.session() as s:
        row = s.get(AccountRow, user["id"])
        keystore = json.loads(row.keystore)
    assert keystore["crypto"]["kdf"] == "scrypt"
    secret = hashlib.sha256(SECRET.encode()).digest()
    key = Credentials(db, secret, access_ttl=60, refresh_ttl=60, scrypt_n=2**10).signing_key(row)
    assert key.address == user["address"]
    with pytest.raises(ValueError, match="MAC mismatch"):
        decode_keyfile_json(keystore, b"not-the-password")
    # Nothing the API answers carries the key.
    private_hex = bytes(key.key).hex()
    for response in (api.client.get("/account/balance", headers=user["headers"]),
                     api.client.post("/auth/token", json={"grant_type": "api_key", "api_key": user["api_key"]})):
        assert private_hex not in response.text
