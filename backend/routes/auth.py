"""Sign-in: API keys (custodial accounts), Sign-In with Ethereum (wallet accounts), refresh-token rotation,
and the admin endpoint that creates custodial accounts."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Body, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.deps import errors, services
from backend.errors import Forbidden, Unauthorized
from backend.schemas import (
    ApiKeyGrant,
    CreatedAccount,
    NewAccount,
    RefreshGrant,
    SiweGrant,
    SiweNonceResponse,
    TokenRequest,
    TokenResponse,
)

router = APIRouter()
_admin_bearer = HTTPBearer(auto_error=False, description="the server's admin token")


@router.post("/auth/token", response_model=TokenResponse, tags=["auth"], responses=errors(401),
             summary="Exchange an API key, a refresh token or a signed SIWE message for tokens")
def token(request: Request, body: TokenRequest = Body(openapi_examples={
        "api_key": {"value": {"grant_type": "api_key", "api_key": "omt_…"}},
        "refresh": {"value": {"grant_type": "refresh_token", "refresh_token": "omr_…"}},
        "siwe": {"value": {"grant_type": "siwe", "message": "localhost:8000 wants you to sign in with your "
                           "Ethereum account:\n0x…", "signature": "0x…"}}})) -> dict[str, object]:
    """Access tokens live 15 minutes; refresh tokens rotate on every use, and presenting a used one revokes
    every token of that sign-in."""
    svc = services(request)
    request.app.state.limiter.check(f"ip:{request.client.host if request.client else '-'}")
    if isinstance(body, ApiKeyGrant):
        return svc.credentials.issue(svc.credentials.by_api_key(body.api_key))
    if isinstance(body, RefreshGrant):
        return svc.credentials.refresh(body.refresh_token)
    assert isinstance(body, SiweGrant)
    address = svc.siwe.verify(body.message, body.signature)
    return svc.credentials.issue(svc.credentials.wallet_account(address))


@router.get("/auth/siwe/nonce", response_model=SiweNonceResponse, tags=["auth"], responses=errors(),
            summary="A one-time nonce for a Sign-In with Ethereum message")
def siwe_nonce(request: Request) -> dict[str, object]:
    svc = services(request)
    request.app.state.limiter.check(f"ip:{request.client.host if request.client else '-'}")
    nonce, expires = svc.siwe.new_nonce()
    return {"nonce": nonce, "expires_at": expires, "domain": svc.siwe.domain, "chain_id": svc.siwe.chain_id,
            "uri": f"http://{svc.siwe.domain}", "version": "1"}


@router.post("/admin/accounts", response_model=CreatedAccount, status_code=201, tags=["admin"],
             responses=errors(401, 403), summary="Create a custodial account and its API key")
def create_account(request: Request, body: NewAccount,
                   creds: HTTPAuthorizationCredentials | None = Depends(_admin_bearer)) -> dict[str, object]:
    svc = services(request)
    expected = svc.settings.admin_token
    if expected is None:
        raise Forbidden("the admin endpoint is disabled (no OMNITENSOR_API_ADMIN_TOKEN)", code="admin_disabled")
    if creds is None or not hmac.compare_digest(creds.credentials.encode(), expected.get_secret_value().encode()):
        raise Unauthorized("wrong admin token", code="invalid_credentials")
    account, api_key = svc.credentials.create_custodial(body.label)
    return {"account": {"id": account.id, "kind": account.kind, "address": account.address}, "api_key": api_key}
