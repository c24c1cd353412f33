"""Health, blobs for remote nodes, and relaying of requests that wallets signed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import text

from backend.deps import account_of, errors, principal, services
from backend.errors import Forbidden, NotFound
from backend.schemas import Health, RelayRequest, RelayResult
from backend.security import Principal
from omnitensor.errors import ChainError

router = APIRouter()


@router.get("/health", response_model=Health, tags=["system"], responses={503: {"model": Health}},
            summary="Chain, contracts, relayer and database")
def health(request: Request) -> JSONResponse:
    svc = services(request)
    block = relayer_balance = None
    try:
        block = svc.net.chain.block_number()
        relayer_balance = str(svc.net.chain.eth_balance(svc.net.relayer.address))
    except ChainError:
        pass
    try:
        with svc.db.session() as s:
            s.execute(text("SELECT 1"))
        database = "ok"
    except Exception:  # any driver error means the database is not usable
        database = "error"
    ok = block is not None and database == "ok"
    body = {"status": "ok" if ok else "degraded", "chain_id": svc.net.manifest.chain_id, "block": block,
            "contracts": svc.net.addresses, "relayer": svc.net.relayer.address,
            "relayer_balance_wei": relayer_balance, "database": database}
    return JSONResponse(body, 200 if ok else 503)


@router.get("/blobs/{sha256}", tags=["system"], response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}}, 404: errors(404)[404]},
            summary="A stored model, dataset or tensor by its SHA-256 (nodes verify what they fetch)")
def blob(request: Request, sha256: str = Path(pattern=r"^[0-9a-f]{64}$")) -> FileResponse:
    path = services(request).blobs.path(bytes.fromhex(sha256))
    if not path.is_file():
        raise NotFound(f"no blob {sha256}", code="blob_not_found")
    return FileResponse(path, media_type="application/octet-stream")


@router.post("/relay", response_model=RelayResult, tags=["wallets"], responses=errors(401, 402, 403, 409, 502, 504),
             summary="Relay a forward request your wallet signed (the relayer pays the gas)")
async def relay(request: Request, body: RelayRequest, who: Principal = Depends(principal)) -> JSONResponse:
    """For wallet accounts: a write answered with 428 carries the EIP-712 request to sign in
    `error.details.typed_data`; sign it and post it here with the same Idempotency-Key."""
    svc = services(request)
    if who.kind != "wallet":
        raise Forbidden("custodial accounts' writes are signed by the API; call the endpoint itself",
                        code="not_a_wallet_account")

    def handler(key: str) -> tuple[int, dict[str, Any]]:
        account = account_of(svc, who)
        receipt, events = svc.relay.relay_signed(account, body.request.model_dump(by_alias=True), body.signature,
                                                 key=key)
        return 200, {"tx_hash": receipt["transactionHash"], "block": int(receipt["blockNumber"], 16),
                     "events": [{"name": e.name, "args": {k: _plain(v) for k, v in e.args.items()}} for e in events]}

    return await request.app.state.idempotency.run(request, svc, who, handler)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value

