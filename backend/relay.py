"""Relayed writes: an account's call, signed as an ERC-2771 forward request (by the custodial key here, or by
the user's wallet), sent through the forwarder by the relayer, which pays the gas.

Every relayed transaction is recorded before its first broadcast under the caller's idempotency key, so a
retried request or a restarted backend finds it and waits for it instead of sending another. Relaying is
capped per account, per minute and in total."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Any

from eth_abi import decode as abi_decode
from hexbytes import HexBytes
from sqlalchemy import func, select

from backend import effects
from backend.db import Account, Database, RelayedTx
from backend.errors import (
    Conflict,
    Forbidden,
    GatewayTimeout,
    Invalid,
    RateLimited,
    SignatureRequired,
    from_revert,
)
from backend.network import Network
from backend.security import Credentials
from backend.settings import ApiSettings
from omnitensor.chain import Event
from omnitensor.errors import ContractRevert, TransactionTimeout
from omnitensor.signatures import FORWARD_REQUEST_TYPES, forward_request_domain, sign_forward_request

Mined = tuple[dict[str, Any], list[Event]]  # a receipt and its decoded events
REQUEST_TTL_S = 3600  # forward requests expire an hour after signing
RECEIPT_TIMEOUT_S = 120.0


class Relay:
    def __init__(self, net: Network, db: Database, credentials: Credentials, settings: ApiSettings) -> None:
        self.net = net
        self.db = db
        self.credentials = credentials
        self.per_minute = settings.relays_per_minute
        self.total = settings.relays_total
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._forwarder = net.address("OmniForwarder")
        self._targets = {net.address(n) for n in ("OmniToken", "Registry", "ComputeMarket")}

    # ── custodial accounts, and the request wallet accounts must sign ──
    def submit(self, account: Account, contract: str, data: str, *, action: str, key: str,
               accepted_at: float | None = None) -> Mined:
        """Runs `data` on `contract` as `account`; returns the receipt and its events, already applied to the
        records. Raises the decoded revert before anything is signed; a wallet account gets
        `SignatureRequired` with the request to sign instead."""
        to = self.net.address(contract)
        with self._locks[account.id]:
            existing = self._existing_or_check_caps(account.id, key)
            if existing is not None:
                return self._finish(existing, account.address)
            gas, nonce, fees = self._simulate(account.address, to, data)
            deadline = int(time.time()) + REQUEST_TTL_S
            if account.kind == "wallet":
                raise SignatureRequired(
                    "a wallet account signs its own writes: sign `typed_data` (eth_signTypedData_v4) and POST it "
                    "with the signature to /relay", details={"typed_data": self._typed_data(
                        account.address, to, data, gas, nonce, deadline), "relay_url": "/relay"})
            signed = sign_forward_request(self.net.chain, self.credentials.signing_key(account), self._forwarder, to,
                                          data, gas=gas, deadline=deadline, nonce=nonce)
            return self._send(account, key, action, signed, gas, fees, accepted_at)

    # ── wallet accounts: a request the wallet signed ──
    def relay_signed(self, account: Account, request: dict[str, Any], signature: str, *, key: str) -> Mined:
        if request["from"].lower() != account.address.lower():
            raise Forbidden("the request's `from` is not the signed-in wallet", code="wrong_signer")
        if request["to"] not in self._targets:
            raise Invalid("the request's `to` is not an OmniTensor contract", code="invalid_target")
        data = request["data"]
        signed = (account.address, request["to"], int(request["value"]), int(request["gas"]),
                  int(request["deadline"]), bytes(HexBytes(data)), bytes(HexBytes(signature)))
        with self._locks[account.id]:
            existing = self._existing_or_check_caps(account.id, key)
            if existing is not None:
                return self._finish(existing, account.address)
            _, _, fees = self._simulate(account.address, request["to"], data)
            (valid,) = self.net.views(("OmniForwarder", "verify", (signed,)))
            if not valid:
                raise Invalid("the forward request's signature, nonce or deadline is not valid",
                              code="invalid_signature")
            return self._send(account, key, "relay", signed, int(request["gas"]), fees, None)

    # ── internals ──
    def _existing_or_check_caps(self, account_id: str, key: str) -> RelayedTx | None:
        """The transaction already sent under this key, if any; else checks the account may relay another."""
        with self.db.session() as s:
            existing = s.scalars(select(RelayedTx).filter_by(account_id=account_id, idempotency_key=key)).one_or_none()
            if existing is not None:
                return existing
            total = s.scalar(select(func.count()).select_from(RelayedTx).filter_by(account_id=account_id)) or 0
            recent = s.scalar(select(func.count()).select_from(RelayedTx).filter(
                RelayedTx.account_id == account_id, RelayedTx.created_at > time.time() - 60)) or 0
        if total >= self.total:
            raise RateLimited(f"this account has used all {self.total} relayed transactions it may",
                              retry_after=86400, code="relay_quota_exhausted")
        if recent >= self.per_minute:
            raise RateLimited(f"at most {self.per_minute} relayed transactions per minute", retry_after=60,
                              code="relay_rate_limited")
        return None

    def _simulate(self, sender: str, to: str, data: str) -> tuple[int, int, tuple[int, int]]:
        """The call as the account would make it (its revert decoded), its gas, the account's forwarder nonce
        and the fees, in one round trip."""
        call = {"from": sender, "to": to, "data": data}
        try:
            _, estimate, nonce_raw, latest, tip = self.net.chain.batch_rpc([
                ("eth_call", [call, "latest"]),
                ("eth_estimateGas", [call]),
                ("eth_call", [{"to": self._forwarder,
                               "data": self.net.calldata("OmniForwarder", "nonces", sender)}, "latest"]),
                ("eth_getBlockByNumber", ["latest", False]),
                ("eth_maxPriorityFeePerGas", []),
            ])
        except ContractRevert as exc:
            raise from_revert(exc) from exc
        gas = int(estimate, 16) * 6 // 5  # the estimate already includes 21k of intrinsic gas: headroom enough
        (nonce,) = abi_decode(["uint256"], bytes(HexBytes(nonce_raw)))
        return gas, nonce, self.net.relayer.fee_caps(latest, tip)

    def _typed_data(self, sender: str, to: str, data: str, gas: int, nonce: int, deadline: int) -> dict[str, Any]:
        return {
            "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                       {"name": "chainId", "type": "uint256"},
                                       {"name": "verifyingContract", "type": "address"}],
                      "ForwardRequest": FORWARD_REQUEST_TYPES},
            "primaryType": "ForwardRequest",
            "domain": forward_request_domain(self.net.chain, self._forwarder),
            "message": {"from": sender, "to": to, "value": "0", "gas": str(gas), "nonce": str(nonce),
                        "deadline": str(deadline), "data": data},
        }

    def _send(self, account: Account, key: str, action: str, signed: tuple[Any, ...], gas: int,
              fees: tuple[int, int], accepted_at: float | None) -> Mined:
        data = self.net.calldata("OmniForwarder", "execute", signed)
        # The forwarder needs gas × 64/63 left when it calls (EIP-150), plus its own signature checks and calldata.
        outer_gas = gas * 64 // 63 + 60_000 + 16 * (len(data) // 2)
        tx = {"to": self._forwarder, "data": data, "value": 0, "gas": outer_gas, "chainId": self.net.chain.chain_id,
              "maxFeePerGas": fees[0], "maxPriorityFeePerGas": fees[1], "type": 2}
        row_id: list[int] = []

        def record(tx_hash: str, raw: str, _nonce: int) -> None:
            with self.db.session() as s:
                if row_id:  # a fee bump replaces the recorded transaction
                    row = s.get(RelayedTx, row_id[0])
                    row.tx_hash, row.raw_tx = tx_hash, raw  # type: ignore[union-attr]
                    return
                row = RelayedTx(account_id=account.id, idempotency_key=key, action=action, tx_hash=tx_hash,
                                raw_tx=raw)
                s.add(row)
                s.flush()
                row_id.append(row.id)

        try:
            receipt = self.net.relayer.send_built(tx, timeout=RECEIPT_TIMEOUT_S, before_send=record)
        except TransactionTimeout as exc:
            raise GatewayTimeout(f"the relayed transaction was not mined in {RECEIPT_TIMEOUT_S:.0f}s; retry with "
                                 "the same Idempotency-Key to keep waiting for it") from exc
        except ContractRevert as exc:  # reverted on-chain although the simulation passed (state changed between)
            self._mark(row_id, "reverted")
            raise from_revert(exc) from exc
        events = effects.apply(self.db, self.net, account.id, account.address, receipt, accepted_at=accepted_at)
        self._mark(row_id, "applied")  # only now: a crash before this line is recovered at the next start
        return receipt, events

    def _mark(self, row_id: list[int], status: str) -> None:
        if row_id:
            with self.db.session() as s:
                s.get(RelayedTx, row_id[0]).status = status  # type: ignore[union-attr]

    def _finish(self, row: RelayedTx, address: str) -> Mined:
        """The receipt of an already-recorded transaction (re-broadcast if the chain lost it), applied."""
        receipt = self.net.chain.receipt(row.tx_hash)
        if receipt is None:
            self.net.relayer.rebroadcast(row.raw_tx)
            receipt = self.net.chain.wait_for_receipt(row.tx_hash, RECEIPT_TIMEOUT_S)
        if receipt is None:
            raise GatewayTimeout(f"transaction {row.tx_hash} is still not mined; retry later")
        if int(receipt["status"], 16) != 1:
            self._mark([row.id], "reverted")
            raise Conflict(f"the relayed transaction {row.tx_hash} reverted", code="relayed_call_failed",
                           details={"tx_hash": row.tx_hash})
        events = effects.apply(self.db, self.net, row.account_id, address, receipt, accepted_at=row.created_at)
        self._mark([row.id], "applied")
        return receipt, events

    def recover(self, log: logging.Logger) -> int:
        """Finishes the relayed transactions a stopped backend left unapplied; returns how many."""
        with self.db.session() as s:
            rows = list(s.scalars(select(RelayedTx).where(RelayedTx.status == "sent")))
            addresses = {a.id: a.address for a in s.scalars(select(Account).where(
                Account.id.in_({r.account_id for r in rows})))}
        done = 0
        for row in rows:
            try:
                with self._locks[row.account_id]:
                    self._finish(row, addresses[row.account_id])
                done += 1
            except Exception as exc:  # one stuck transaction must not stop the others' recovery
                log.warning("relayed transaction %s not recovered: %s", row.tx_hash, exc)
        return done
