"""Credentials: API keys (stored as SHA-256: they are 256-bit random, so a slow hash adds nothing), JWT access
tokens (HS256 only), rotating refresh tokens with reuse detection, and custodial keys encrypted with Web3
Secret Storage (scrypt) under a password derived from the server secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import jwt
from eth_account import Account as EthAccount
from eth_account.signers.local import LocalAccount
from eth_keyfile import create_keyfile_json, decode_keyfile_json
from sqlalchemy import update

from backend.db import Account, Database, RefreshToken
from backend.errors import Unauthorized

API_KEY_PREFIX = "omt_"
REFRESH_PREFIX = "omr_"
AUDIENCE = "omnitensor-api"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified access token."""

    account_id: str
    address: str
    kind: str  # custodial | wallet


class Credentials:
    def __init__(self, db: Database, secret: bytes, *, access_ttl: int, refresh_ttl: int, scrypt_n: int) -> None:
        self.db = db
        self._jwt_key = hmac.new(secret, b"omnitensor/jwt", hashlib.sha256).digest()
        self._key_secret = hmac.new(secret, b"omnitensor/custodial-keys", hashlib.sha256).digest()
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.scrypt_n = scrypt_n
        self._keys: OrderedDict[str, LocalAccount] = OrderedDict()  # decrypted once per process: scrypt is slow
        self._keys_lock = threading.Lock()

    # ── accounts ──
    def create_custodial(self, label: str = "") -> tuple[Account, str]:
        """A new account with a fresh Ethereum key; returns it and its API key (shown once, stored hashed)."""
        api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        key = EthAccount.create()
        account_id = new_id("acct")
        keystore = create_keyfile_json(bytes(key.key), self._password(account_id), kdf="scrypt",
                                       iterations=self.scrypt_n)
        row = Account(id=account_id, kind="custodial", address=key.address, label=label,
                      api_key_hash=token_hash(api_key), keystore=json.dumps(keystore))
        with self.db.session() as s:
            s.add(row)
        return row, api_key

    def wallet_account(self, address: str) -> Account:
        with self.db.session() as s:
            row = s.query(Account).filter_by(address=address).one_or_none()
            if row is None:
                row = Account(id=new_id("acct"), kind="wallet", address=address)
                s.add(row)
            return row

    def by_api_key(self, api_key: str) -> Account:
        with self.db.session() as s:
            row = s.query(Account).filter_by(api_key_hash=token_hash(api_key)).one_or_none()
        if row is None or row.disabled:
            raise Unauthorized("unknown or disabled API key", code="invalid_credentials")
        return row

    def signing_key(self, account: Account) -> LocalAccount:
        with self._keys_lock:
            if account.id in self._keys:
                self._keys.move_to_end(account.id)
                return self._keys[account.id]
        if account.keystore is None:
            raise Unauthorized("a wallet account has no key here; the wallet signs", code="wallet_account")
        key = EthAccount.from_key(decode_keyfile_json(json.loads(account.keystore), self._password(account.id)))
        with self._keys_lock:
            self._keys[account.id] = key
            while len(self._keys) > 10_000:
                self._keys.popitem(last=False)
        return key

    def _password(self, account_id: str) -> bytes:
        return hmac.new(self._key_secret, account_id.encode(), hashlib.sha256).hexdigest().encode()

    # ── tokens ──
    def issue(self, account: Account, family: str | None = None) -> dict[str, object]:
        now = int(time.time())
        claims = {"sub": account.id, "addr": account.address, "kind": account.kind, "typ": "access",
                  "aud": AUDIENCE, "iat": now, "exp": now + self.access_ttl, "jti": uuid.uuid4().hex}
        refresh = REFRESH_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as s:
            s.add(RefreshToken(token_hash=token_hash(refresh), family=family or uuid.uuid4().hex,
                               account_id=account.id, expires_at=now + self.refresh_ttl))
        return {
            "access_token": jwt.encode(claims, self._jwt_key, algorithm="HS256"),
            "token_type": "bearer",
            "expires_in": self.access_ttl,
            "refresh_token": refresh,
            "refresh_expires_in": self.refresh_ttl,
            "account": {"id": account.id, "kind": account.kind, "address": account.address},
        }

    def verify_access(self, token: str) -> Principal:
        try:
            claims = jwt.decode(token, self._jwt_key, algorithms=["HS256"], audience=AUDIENCE,
                                options={"require": ["exp", "iat", "sub", "typ", "addr", "kind"]})
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the access token has expired; refresh it", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid access token: {exc}", code="invalid_token") from exc
        if claims["typ"] != "access":
            raise Unauthorized("not an access token", code="invalid_token")
        return Principal(claims["sub"], claims["addr"], claims["kind"])

    def refresh(self, refresh_token: str) -> dict[str, object]:
        """Rotates a refresh token. Presenting one that was already used revokes its whole family: whoever
        holds the newer token (possibly a thief) is signed out too."""
        hashed = token_hash(refresh_token)
        now = time.time()
        with self.db.session() as s:
            row = s.get(RefreshToken, hashed)
            if row is None:
                raise Unauthorized("unknown refresh token", code="invalid_token")
            if row.revoked or row.used_at is not None:
                s.execute(update(RefreshToken).where(RefreshToken.family == row.family).values(revoked=True))
                reused = True
            else:
                reused = False
                if row.expires_at < now:
                    raise Unauthorized("the refresh token has expired; sign in again", code="token_expired")
                # Compare-and-set, so two concurrent uses of one token cannot both succeed.
                claimed = s.execute(update(RefreshToken).where(
                    RefreshToken.token_hash == hashed, RefreshToken.used_at.is_(None)).values(used_at=now))
                if claimed.rowcount != 1:  # type: ignore[attr-defined]
                    raise Unauthorized("refresh token already used", code="refresh_token_reused")
            account = s.get(Account, row.account_id)
            family = row.family
        if reused:
            raise Unauthorized("refresh token already used: every token of this sign-in is revoked",
                               code="refresh_token_reused")
        if account is None or account.disabled:
            raise Unauthorized("the account is disabled", code="invalid_credentials")
        return self.issue(account, family)
