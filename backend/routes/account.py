"""Balances, transfers, and moving OMNIT in and out of the market deposit."""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from backend.db import Account
from backend.deps import account_of, errors, principal, services
from backend.errors import Invalid, NotFound
from backend.schemas import AmountRequest, Balance, TransferRequest, TxResult
from backend.security import Principal
from backend.services import Services
from omnitensor.signatures import sign_permit

router = APIRouter(tags=["account"])
PERMIT_TTL_S = 3600


def _balance_calls(address: str) -> tuple[tuple[str, str, tuple[Any, ...]], ...]:
    return ("OmniToken", "balanceOf", (address,)), ("ComputeMarket", "balanceOf", (address,))


def _balance_body(address: str, wallet: int, deposit: tuple[int, int]) -> dict[str, Any]:
    return {"address": address, "wallet_wei": str(wallet), "available_wei": str(deposit[0]),
            "locked_wei": str(deposit[1])}


def balance(svc: Services, address: str) -> dict[str, Any]:
    return _balance_body(address, *svc.net.views(*_balance_calls(address)))


@router.get("/account/balance", response_model=Balance, responses=errors(401, 502),
            summary="OMNIT in your wallet, and available and locked in your market deposit")
async def get_balance(request: Request, who: Principal = Depends(principal)) -> JSONResponse:
    # Async all the way (no thread-pool hop): this is the API's hottest read.
    values = await services(request).net.aviews(*_balance_calls(who.address))
    return JSONResponse(_balance_body(who.address, *values))


def _recipient(svc: Services, to: str) -> str:
    if re.fullmatch(r"0x[0-9a-fA-F]{40}", to):
        return to
    if to.startswith("acct_"):
        with svc.db.session() as s:
            row = s.get(Account, to)
        if row is None:
            raise NotFound(f"no account {to}", code="account_not_found")
        return row.address
    raise Invalid("`to` must be an address (0x…) or an account id (acct_…)", code="invalid_recipient")


async def _write(request: Request, who: Principal, contract: str, action: str, calldata: Any) -> JSONResponse:
    svc = services(request)

    def handler(key: str) -> tuple[int, dict[str, Any]]:
        account = account_of(svc, who)
        receipt, _ = svc.relay.submit(account, contract, calldata(svc, account), action=action, key=key)
        return 200, {"tx_hash": receipt["transactionHash"], "block": int(receipt["blockNumber"], 16),
                     "balance": balance(svc, account.address)}

    return await request.app.state.idempotency.run(request, svc, who, handler)


WRITE_ERRORS = errors(401, 402, 404, 409, 428, 502, 503, 504)


@router.post("/account/transfer", response_model=TxResult, responses=WRITE_ERRORS,
             summary="Send OMNIT from your wallet to an address or another account")
async def transfer(request: Request, body: TransferRequest, who: Principal = Depends(principal)) -> JSONResponse:
    to = _recipient(services(request), body.to)
    return await _write(request, who, "OmniToken", "transfer",
                        lambda svc, _: svc.net.calldata("OmniToken", "transfer", to, int(body.amount_wei)))


@router.post("/account/deposit", response_model=TxResult, responses=WRITE_ERRORS,
             summary="Move OMNIT from your wallet into your market deposit (pays for jobs and allocations)")
async def deposit(request: Request, body: AmountRequest, who: Principal = Depends(principal)) -> JSONResponse:
    """Custodial accounts deposit with an ERC-2612 permit signed by their key: one transaction, no approval."""

    def calldata(svc: Services, account: Account) -> str:
        amount = int(body.amount_wei)
        if account.kind == "wallet":  # the wallet approves the market itself, then signs this request
            return svc.net.calldata("ComputeMarket", "deposit", amount)
        deadline = int(time.time()) + PERMIT_TTL_S
        v, r, s = sign_permit(svc.net.chain, svc.credentials.signing_key(account), svc.net.manifest.token,
                              svc.net.manifest.market, amount, deadline)
        return svc.net.calldata("ComputeMarket", "depositWithPermit", amount, deadline, v, r, s)

    return await _write(request, who, "ComputeMarket", "deposit", calldata)


@router.post("/account/withdraw", response_model=TxResult, responses=WRITE_ERRORS,
             summary="Move available OMNIT from your market deposit back to your wallet")
async def withdraw(request: Request, body: AmountRequest, who: Principal = Depends(principal)) -> JSONResponse:
    return await _write(request, who, "ComputeMarket", "withdraw",
                        lambda svc, _: svc.net.calldata("ComputeMarket", "withdraw", int(body.amount_wei)))
