"""Sign-In with Ethereum (EIP-4361): parsing the message, checking it against this server, and recovering its
signer. The `siwe` package pins web3 < 8, so the small grammar is implemented here; nonces are one-time and
kept server-side (the database), which the standard leaves to the server."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_checksum_address
from sqlalchemy import update

from backend.db import Database, SiweNonce
from backend.errors import Unauthorized

_HEADER = re.compile(
    r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*://)?(?P<domain>[^\s/]+) wants you to sign in with your Ethereum account:$")
_FIELDS = ("URI", "Version", "Chain ID", "Nonce", "Issued At", "Expiration Time", "Not Before", "Request ID")
_REQUIRED = ("URI", "Version", "Chain ID", "Nonce", "Issued At")


@dataclass(frozen=True)
class SiweMessage:
    domain: str
    address: str
    statement: str | None
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: datetime
    expiration_time: datetime | None = None
    not_before: datetime | None = None

    def text(self) -> str:
        lines = [f"{self.domain} wants you to sign in with your Ethereum account:", self.address, ""]
        if self.statement:
            lines += [self.statement, ""]
        lines += [f"URI: {self.uri}", f"Version: {self.version}", f"Chain ID: {self.chain_id}",
                  f"Nonce: {self.nonce}", f"Issued At: {_iso(self.issued_at)}"]
        if self.expiration_time:
            lines.append(f"Expiration Time: {_iso(self.expiration_time)}")
        if self.not_before:
            lines.append(f"Not Before: {_iso(self.not_before)}")
        return "\n".join(lines)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _time(value: str, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _invalid(f"{field} is not an RFC 3339 time") from exc
    if moment.tzinfo is None:
        raise _invalid(f"{field} has no time zone")
    return moment


def _invalid(message: str) -> Unauthorized:
    return Unauthorized(f"invalid Sign-In with Ethereum message: {message}", code="siwe_invalid_message")


def parse(text: str) -> SiweMessage:
    lines = text.split("\n")
    if len(lines) < 8:
        raise _invalid("too short")
    header = _HEADER.match(lines[0])
    if not header:
        raise _invalid("the first line is not '<domain> wants you to sign in with your Ethereum account:'")
    address = lines[1]
    if not is_checksum_address(address):
        raise _invalid("the address must be an EIP-55 checksummed address")
    if lines[2] != "":
        raise _invalid("a blank line must follow the address")
    rest = lines[3:]
    statement = None
    if rest and rest[0] != "" and not rest[0].startswith("URI: "):
        statement, rest = rest[0], rest[1:]
    if not rest or rest[0] != "":
        raise _invalid("a blank line must precede the fields")
    fields: dict[str, str] = {}
    order = iter(_FIELDS)
    for line in rest[1:]:
        if line == "Resources:" or line.startswith("- "):
            continue
        key, sep, value = line.partition(": ")
        if not sep or key not in _FIELDS or key in fields:
            raise _invalid(f"unexpected line {line!r}")
        if key not in order:  # fields must come in the standard's order; `in` advances the iterator
            raise _invalid(f"field {key!r} is out of order")
        fields[key] = value
    missing = [f for f in _REQUIRED if f not in fields]
    if missing:
        raise _invalid(f"missing {', '.join(missing)}")
    if fields["Version"] != "1":
        raise _invalid("Version must be 1")
    if not re.fullmatch(r"[a-zA-Z0-9]{8,}", fields["Nonce"]):
        raise _invalid("the nonce must be at least 8 alphanumeric characters")
    if not fields["Chain ID"].isdigit():
        raise _invalid("Chain ID must be a number")
    return SiweMessage(
        domain=header["domain"], address=address, statement=statement, uri=fields["URI"],
        version="1", chain_id=int(fields["Chain ID"]), nonce=fields["Nonce"],
        issued_at=_time(fields["Issued At"], "Issued At"),
        expiration_time=_time(fields["Expiration Time"], "Expiration Time") if "Expiration Time" in fields else None,
        not_before=_time(fields["Not Before"], "Not Before") if "Not Before" in fields else None,
    )


class SiweVerifier:
    def __init__(self, db: Database, domain: str, chain_id: int, nonce_ttl: int, skew: int) -> None:
        self.db = db
        self.domain = domain
        self.chain_id = chain_id
        self.nonce_ttl = nonce_ttl
        self.skew = skew

    def new_nonce(self) -> tuple[str, float]:
        nonce = secrets.token_hex(16)
        expires = time.time() + self.nonce_ttl
        with self.db.session() as s:
            s.add(SiweNonce(nonce=nonce, expires_at=expires))
        return nonce, expires

    def verify(self, text: str, signature: str) -> str:
        """The signer's address, once the message is this server's, current, signed, and its nonce unused."""
        message = parse(text)
        if message.domain != self.domain:
            raise Unauthorized(f"the message is for {message.domain}, this server is {self.domain}",
                               code="siwe_wrong_domain")
        if message.chain_id != self.chain_id:
            raise Unauthorized(f"the message is for chain {message.chain_id}, this network is chain {self.chain_id}",
                               code="siwe_wrong_chain")
        now = time.time()
        if message.expiration_time and message.expiration_time.timestamp() < now - self.skew:
            raise Unauthorized("the message has expired", code="siwe_expired")
        if message.not_before and message.not_before.timestamp() > now + self.skew:
            raise Unauthorized("the message is not valid yet", code="siwe_not_yet_valid")
        if message.issued_at.timestamp() > now + self.skew:
            raise Unauthorized("the message is issued in the future", code="siwe_invalid_message")
        try:
            signer = Account.recover_message(encode_defunct(text=text), signature=signature)
        except Exception as exc:  # eth-account raises several kinds for malformed signatures
            raise Unauthorized("the signature cannot be recovered", code="invalid_signature") from exc
        if signer != message.address:
            raise Unauthorized("the signature is not by the message's address", code="invalid_signature")
        with self.db.session() as s:  # compare-and-set: a replayed message finds its nonce used
            claimed = s.execute(update(SiweNonce).where(
                SiweNonce.nonce == message.nonce, SiweNonce.used_at.is_(None), SiweNonce.expires_at >= now,
            ).values(used_at=now))
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                raise Unauthorized("the nonce is unknown, expired or already used; get a new one",
                                   code="siwe_nonce_invalid")
        return signer
