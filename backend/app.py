"""The FastAPI application: routes, one error body for every failure, request ids, and the services'
lifecycle."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.deps import Idempotency, RateLimiter
from backend.errors import ApiError, BadGateway, GatewayTimeout, Invalid, TooLarge, from_revert
from backend.routes import account, auth, compute, data, models, system, uploads
from backend.services import Services
from backend.settings import ApiSettings
from omnitensor.blobs import BlobError
from omnitensor.errors import ChainError, ContractRevert, TransactionTimeout

log = logging.getLogger("omnitensor.api")
MAX_JSON_BYTES = 16 * 1024 * 1024

DESCRIPTION = """OmniTensor's HTTP API for clients without a wallet: upload models and datasets, run inference
on the network's GPU nodes, reserve GPU time, and move OMNIT. Every write becomes a transaction signed with your
account's key and relayed through the ERC-2771 forwarder; the relayer pays the gas.

**Auth**: `POST /auth/token` with an API key (or a Sign-In with Ethereum message) → a 15-minute access token
for `Authorization: Bearer …` and a refresh token that rotates on every use.

**Writes** accept an `Idempotency-Key` header: retrying with the same key never sends a second transaction.

**Errors** all have one body: `{"error": {"code", "message", "details", "request_id"}}`; `code` is stable.
Amounts are decimal strings in wei (1 OMNIT = 10^18 wei)."""


class RequestGate:
    """Gives every request an id (the client's `X-Request-ID`, or a new one), echoed in the response, and
    refuses bodies whose declared length is above the largest any route takes (uploads stream and enforce
    their own limits as bytes arrive)."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body:
            error = TooLarge(f"the body is larger than {self.max_body} bytes", code="body_too_large")
            body = {"error": {"code": error.code, "message": error.message, "details": {}, "request_id": request_id}}
            await JSONResponse(body, error.status)(scope, receive, send_with_id)
            return
        await self.app(scope, receive, send_with_id)


def error_response(request: Request, error: ApiError) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "-")
    body = {"error": {"code": error.code, "message": error.message, "details": jsonable_encoder(error.details),
                      "request_id": request_id}}
    return JSONResponse(body, error.status, headers=error.headers)


def _as_api_error(exc: Exception) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ContractRevert):
        return from_revert(exc)
    if isinstance(exc, TransactionTimeout):
        return GatewayTimeout(str(exc))
    if isinstance(exc, ChainError):
        return BadGateway(f"the chain is unreachable or refused the request: {exc}")
    if isinstance(exc, BlobError):
        return BadGateway(str(exc), code=exc.code)
    if isinstance(exc, RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
        return Invalid("the request is invalid", details={"errors": errors})
    if isinstance(exc, HTTPException):
        codes = {404: "not_found", 405: "method_not_allowed"}
        error = ApiError(str(exc.detail), code=codes.get(exc.status_code, "http_error"))
        error.status = exc.status_code
        return error
    return ApiError("internal error; the request id identifies it in the server's log")


def create_app(settings: ApiSettings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = services or Services.build(settings)
        svc.start()
        app.state.services = svc
        try:
            yield
        finally:
            svc.close()

    app = FastAPI(title="OmniTensor API", version="1.0.0", description=DESCRIPTION, lifespan=lifespan,
                  openapi_tags=[{"name": n} for n in ("auth", "models", "jobs", "uploads", "compute", "data",
                                                        "account", "wallets", "system", "admin")])
    app.state.limiter = RateLimiter(settings.requests_per_minute)
    app.state.idempotency = Idempotency()
    for module in (auth, models, uploads, data, compute, account, system):
        app.include_router(module.router)

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        error = _as_api_error(exc)
        if error.status >= 500 and not isinstance(exc, ApiError | ChainError | BlobError):
            log.exception("request %s failed", getattr(request.state, "request_id", "-"), exc_info=exc)
        return error_response(request, error)

    for kind in (ApiError, ContractRevert, ChainError, BlobError, RequestValidationError, HTTPException, Exception):
        app.add_exception_handler(kind, handle)

    app.add_middleware(RequestGate, max_body=max(MAX_JSON_BYTES, settings.chunk_bytes, settings.single_upload_bytes))
    return app
