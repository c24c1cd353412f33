"""Request plumbing shared by the routes: the caller's identity, per-account rate limits, idempotent
writes, and the error responses each route declares in OpenAPI."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from backend.db import Account, IdempotencyRecord
from backend.errors import Conflict, Invalid, RateLimited, Unauthorized
from backend.schemas import ErrorBody
from backend.security import Principal
from backend.services import Services

_STATUS_TEXT = {
    400: "Bad request", 401: "Missing, invalid or expired token", 402: "Not enough OMNIT",
    403: "Not allowed", 404: "Not found (or not yours)", 409: "Conflicts with the current state",
    413: "Too large", 416: "Chunk index out of range", 422: "Invalid input", 428: "A wallet must sign this write",
    429: "Rate limit or relay quota reached", 502: "Chain unreachable", 503: "No node available or market paused",
    504: "Transaction not mined in time",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route can return (plus 401/422/429, which all can)."""
    return {s: {"model": ErrorBody, "description": _STATUS_TEXT[s]} for s in sorted({*statuses, 422, 429})}


AUTH_ERRORS = (401,)


def parse_body(model: type[BaseModel], raw: bytes) -> Any:
    """A JSON body parsed by hand (routes whose body may also be binary), failing with the API's 422."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise Invalid("the request body is invalid",
                      details={"errors": exc.errors(include_url=False, include_input=False)}) from exc


def services(request: Request) -> Services:
    return request.app.state.services


class RateLimiter:
    """Requests per key per sliding minute, in this process's memory."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: defaultdict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            hits = self._hits[key]
            while hits and hits[0] <= now - 60:
                hits.popleft()
            if len(hits) >= self.per_minute:
                retry = int(hits[0] + 60 - now) + 1
                raise RateLimited(f"at most {self.per_minute} requests per minute", retry_after=retry)
            hits.append(now)


_bearer = HTTPBearer(auto_error=False, description="an access token from POST /auth/token")


async def principal(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
    """The caller, from the access token (async: an HMAC check is cheaper than a hop to the thread pool)."""
    if creds is None:
        raise Unauthorized("send `Authorization: Bearer <access token>`; get one from POST /auth/token",
                           code="missing_token")
    svc = services(request)
    who = svc.credentials.verify_access(creds.credentials)
    request.app.state.limiter.check(who.account_id)
    return who


def account_of(svc: Services, who: Principal) -> Account:
    with svc.db.session() as s:
        row = s.get(Account, who.account_id)
    if row is None or row.disabled:
        raise Unauthorized("the account is disabled", code="invalid_credentials")
    return row


class Idempotency:
    """`Idempotency-Key` on writes: the same key and body replay the first response; the same key with another
    body is refused. The transaction itself is deduplicated by the relay under the same key, so even a request
    cut off by a crash never sends a second one when retried."""

    def __init__(self) -> None:
        self._in_flight: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    async def run(self, request: Request, svc: Services, who: Principal,
                  handler: Callable[[str], tuple[int, dict[str, Any]]]) -> JSONResponse:
        status, body, replayed = await self.execute(request, svc, who, handler)
        return JSONResponse(body, status, headers={"Idempotent-Replayed": "true"} if replayed else None)

    async def execute(self, request: Request, svc: Services, who: Principal,
                      handler: Callable[[str], tuple[int, dict[str, Any]]]) -> tuple[int, dict[str, Any], bool]:
        """Runs `handler(dedup_key)` once per Idempotency-Key; returns (status, body, replayed)."""
        key = request.headers.get("Idempotency-Key")
        if key is None:
            status, body = await run_in_threadpool(handler, f"auto:{uuid.uuid4().hex}")
            return status, body, False
        if not 1 <= len(key) <= 200 or not key.isprintable():
            raise Invalid("Idempotency-Key must be 1-200 printable characters", code="invalid_idempotency_key")
        body_bytes = await request.body()
        fingerprint = hashlib.sha256(b"%s %s?%s\n%s" % (request.method.encode(), request.url.path.encode(),
                                                        request.url.query.encode(), body_bytes)).hexdigest()
        slot = (who.account_id, key)
        with self._lock:
            if slot in self._in_flight:
                raise Conflict("a request with this Idempotency-Key is still running", code="idempotency_in_progress")
            with svc.db.session() as s:
                record = s.get(IdempotencyRecord, slot)
                if record is not None and record.fingerprint != fingerprint:
                    raise Invalid("this Idempotency-Key was used for a different request",
                                  code="idempotency_key_reused")
                if record is not None and record.response is not None:
                    return record.status_code or 200, json.loads(record.response), True
                if record is None:
                    s.add(IdempotencyRecord(account_id=who.account_id, key=key, fingerprint=fingerprint))
            self._in_flight.add(slot)
        try:
            status, body = await run_in_threadpool(handler, f"key:{key}")
            with svc.db.session() as s:
                record = s.get(IdempotencyRecord, slot)
                record.status_code, record.response = status, json.dumps(body)  # type: ignore[union-attr]
            return status, body, False
        finally:
            with self._lock:
                self._in_flight.discard(slot)
