"""AI models: upload, listing, inference, and the job resources inference creates."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import and_, or_, select

from backend.db import Job
from backend.deps import account_of, errors, parse_body, principal, services
from backend.errors import Invalid, NotFound, TooLarge, Unavailable
from backend.jobs import job_view
from backend.network import FORMATS, ZERO_ADDRESS, topic_address
from backend.routes.uploads import blob_location, session_view, single_upload
from backend.schemas import InferenceRequest, JobPage, JobView, ModelInfo, ModelPage, ModelUploadRequest, Name
from backend.security import Principal
from backend.services import Services
from backend.tensor_json import to_arrays
from omnitensor import tensors

router = APIRouter()
MAX_PAGE = 100
MAX_INLINE_INPUT = 8192  # the market's MAX_INLINE_BYTES; larger inputs go by digest
ZERO_DIGEST = b"\x00" * 32
ModelId = Path(ge=1, le=2**64 - 1)

UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": ModelUploadRequest.model_json_schema(), "example": {
        "name": "digits-mlp", "format": "onnx", "price_wei": "20000000000000000", "size": 20480,
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}}}
INFERENCE_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                            "description": "the inputs as one safetensors archive"}},
}}}


def _cursor(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def _uncursor(kind: str, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        found, _, value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        found, value = "", ""
    if found != kind or not value:
        raise Invalid("invalid cursor: pass back the `next_cursor` of the previous page", code="invalid_cursor")
    return value


def model_info(record: tuple[Any, ...]) -> dict[str, Any]:
    model_id, owner, price, active, fmt, registered_at, digest, uri, name = record
    return {"model_id": model_id, "owner": owner, "name": name, "format": FORMATS[fmt], "price_wei": str(price),
            "active": active, "digest": "0x" + digest.hex(), "uri": uri, "registered_at": registered_at}


# ── upload ──
@router.post("/ai/models/upload", status_code=201, openapi_extra=UPLOAD_BODY, tags=["models"], responses={
    201: {"description": "JSON body: a chunked upload session (`UploadSession`). Binary body: the model, "
          "registered (`RegisteredModel`).", "content": {"application/json": {"schema": {"anyOf": [
              {"$ref": "#/components/schemas/UploadSession"}, {"$ref": "#/components/schemas/RegisteredModel"}]}}}},
    **errors(401, 402, 409, 413, 428, 502, 504)},
    summary="Upload an ONNX or TorchScript model: a chunked session (JSON) or the whole file (binary)")
async def upload_model(
    request: Request, who: Principal = Depends(principal),
    name: Name | None = Query(None, description="binary uploads: the model's name"),
    format: Literal["onnx", "torchscript"] | None = Query(None, description="binary uploads"),  # noqa: A002
    price_wei: str | None = Query(None, pattern=r"^[0-9]{1,26}$", description="binary uploads: per inference"),
    sha256: str | None = Query(None, pattern=r"^[0-9a-fA-F]{64}$", description="binary uploads: checked if given"),
) -> JSONResponse:
    """A JSON body (`ModelUploadRequest`) opens a resumable upload: send its chunks with
    `PUT /uploads/{id}/chunks/{index}`, then `POST /uploads/{id}/complete` with the SHA-256. A small file
    (up to 8 MiB) can instead be the whole `application/octet-stream` body, described by the query
    parameters. Either way the model is loaded as its format (nothing in it is executed), stored under its
    SHA-256 and registered on-chain with you as owner."""
    svc = services(request)
    if request.headers.get("content-type", "").startswith("application/octet-stream"):
        if name is None or format is None or price_wei is None:
            raise Invalid("a binary upload needs the name, format and price_wei query parameters",
                          code="validation_error")
        return await single_upload(request, svc, who, "model", sha256, svc.settings.max_model_bytes, name=name,
                                   fmt=format, price_wei=price_wei)
    spec = parse_body(ModelUploadRequest, await request.body())
    row = await run_in_threadpool(
        svc.uploads.create, who.account_id, "model", size=spec.size, sha256=spec.sha256,
        max_bytes=svc.settings.max_model_bytes, name=spec.name, fmt=spec.format, price_wei=spec.price_wei)
    return JSONResponse(session_view(svc, row), 201, headers={"Location": f"/uploads/{row.id}"})


# ── listing ──
@router.get("/ai/models", response_model=ModelPage, tags=["models"], responses=errors(401),
            summary="Models on the network, or only yours, a page at a time")
def list_models(request: Request, who: Principal = Depends(principal),
                limit: int = Query(20, ge=1, le=MAX_PAGE), cursor: str | None = Query(None, max_length=200),
                mine: bool = Query(False, description="only models you own")) -> dict[str, Any]:
    """Ordered by id (registration order), so models registered between pages neither repeat nor go missing."""
    svc = services(request)
    after_raw = _uncursor("m", cursor)
    after = int(after_raw) if after_raw and after_raw.isdigit() else 0
    if after_raw is not None and not after_raw.isdigit():
        raise Invalid("invalid cursor", code="invalid_cursor")
    if mine:
        ids = sorted(e.args["modelId"] for e in svc.net.logs("Registry", "ModelRegistered", None,
                                                              topic_address(who.address)))
        page_ids = [i for i in ids if i > after][: limit + 1]
        records = svc.net.views(*[("Registry", "getModel", (i,)) for i in page_ids]) if page_ids else []
    else:
        records = svc.net.views(("Registry", "getModels", (after + 1, limit + 1)))[0] if after < 2**64 - 1 else []
    items = [model_info(r) for r in records[:limit]]
    more = len(records) > limit
    return {"items": items, "next_cursor": _cursor("m", str(items[-1]["model_id"])) if more else None}


@router.get("/ai/models/{model_id}", response_model=ModelInfo, tags=["models"], responses=errors(401, 404),
            summary="One model")
def get_model(request: Request, model_id: int = ModelId, who: Principal = Depends(principal)) -> dict[str, Any]:
    (record,) = services(request).net.views(("Registry", "getModel", (model_id,)))
    return model_info(record)


# ── inference ──
def _inputs(svc: Services, request: Request, raw: bytes) -> tuple[bytes, InferenceRequest | None]:
    if request.headers.get("content-type", "").startswith("application/octet-stream"):
        if len(raw) > svc.settings.max_tensor_bytes:
            raise TooLarge(f"inputs above {svc.settings.max_tensor_bytes} bytes", code="tensor_too_large")
        try:
            tensors.decode(raw)
        except tensors.UnsupportedDtype as exc:
            details = {"tensor": exc.tensor, "dtype": exc.dtype, "supported": list(tensors.DTYPES)}
            raise Invalid(str(exc), code="unsupported_dtype", details=details) from exc
        except tensors.TensorDecodeError as exc:
            raise Invalid(str(exc), code="invalid_tensor") from exc
        return raw, None
    spec = parse_body(InferenceRequest, raw)
    return tensors.encode(to_arrays(spec.inputs, svc.settings.max_tensor_bytes)), spec


def open_job(svc: Services, who: Principal, model_id: int, payload: bytes, node: str | None,
             max_fee: int | None, ttl: int, key: str) -> tuple[int, dict[str, Any]]:
    accepted_at = time.time()
    (model,) = svc.net.views(("Registry", "getModel", (model_id,)))
    if not model[3]:
        raise Invalid(f"model {model_id} is inactive", code="model_inactive")
    if max_fee is None:
        nodes = svc.net.active_nodes()
        if not nodes:
            raise Unavailable("no node is active on the network", code="no_node_available")
        if node is not None:
            nodes = [n for n in nodes if n["address"].lower() == node.lower()]
            if not nodes:
                raise Invalid(f"node {node} is not an active node", code="node_not_active")
        max_fee = model[2] + max(n["price_per_job"] for n in nodes)
    digest = ZERO_DIGEST
    if len(payload) > MAX_INLINE_INPUT:
        digest = svc.blobs.put(payload)
        payload = blob_location(svc, digest).encode()
    # The deadline is checked against the chain's clock, which need not be this host's (a local chain that
    # travelled in time, a lagging L2 sequencer).
    call = svc.net.calldata("ComputeMarket", "openJob", model_id, node or ZERO_ADDRESS, max_fee,
                            svc.net.now() + ttl, digest, payload)
    account = account_of(svc, who)
    _, events = svc.relay.submit(account, "ComputeMarket", call, action="open_job", key=key, accepted_at=accepted_at)
    job_id = next(e.args["jobId"] for e in events if e.name == "JobOpened")
    return 202, {"job_id": str(job_id)}


@router.post("/ai/models/{model_id}/inference", response_model=JobView, openapi_extra=INFERENCE_BODY,
             tags=["models"], responses={
                 202: {"model": JobView, "description": "accepted; not settled yet (wait=false, or the wait timed "
                       "out): poll GET /ai/jobs/{job_id}"},
                 **errors(401, 402, 404, 409, 413, 428, 502, 503, 504)},
             summary="Run the model on inputs: opens a job on-chain, paid from your deposit")
async def inference(request: Request, model_id: int = ModelId, who: Principal = Depends(principal),
                    wait: bool = Query(True, description="wait for the result (up to `timeout`)"),
                    timeout: float | None = Query(None, gt=0, le=300, description="seconds; default 30"),
                    node: str | None = Query(None, pattern=r"^0x[0-9a-fA-F]{40}$",
                                             description="binary bodies: the node"),
                    ttl_s: int | None = Query(None, ge=30, le=7 * 24 * 3600, description="binary bodies"),
                    ) -> JSONResponse:
    """Inputs are JSON tensors (`InferenceRequest`) or one safetensors archive (`application/octet-stream`).
    The job's fee (model price + node price) is locked from your deposit and charged only on success; a failed
    job, or one no node settles before its deadline, is refunded."""
    svc = services(request)
    payload, spec = _inputs(svc, request, await request.body())
    chosen = spec.node if spec and spec.node else node
    max_fee = int(spec.max_fee_wei) if spec and spec.max_fee_wei else None
    ttl = (spec.ttl_s if spec and spec.ttl_s else ttl_s) or svc.settings.default_job_ttl_s
    _, opened, _ = await request.app.state.idempotency.execute(
        request, svc, who, lambda key: open_job(svc, who, model_id, payload, chosen, max_fee, ttl, key))
    job_id = opened["job_id"]
    if wait:
        await svc.watcher.wait(job_id, timeout or svc.settings.default_wait_s)
    view = await run_in_threadpool(_job, svc, who, job_id)
    return JSONResponse(view, 202 if view["status"] == "pending" else 200,
                        headers={"Location": f"/ai/jobs/{job_id}"})


# ── jobs ──
def _job(svc: Services, who: Principal, job_id: str) -> dict[str, Any]:
    with svc.db.session() as s:
        row = s.get(Job, job_id)
    if row is None or row.account_id != who.account_id:
        raise NotFound(f"no job {job_id}", code="job_not_found")
    return job_view(row, svc.blobs, svc.settings)


@router.get("/ai/jobs/{job_id}", response_model=JobView, tags=["jobs"], responses=errors(401, 404),
            summary="A job: status, outputs, transactions, fee and timings")
def get_job(request: Request, job_id: str = Path(pattern=r"^[0-9]{1,78}$"),
            who: Principal = Depends(principal)) -> dict[str, Any]:
    return _job(services(request), who, job_id)


@router.get("/ai/jobs", response_model=JobPage, tags=["jobs"], responses=errors(401),
            summary="Your jobs, newest first")
def list_jobs(request: Request, who: Principal = Depends(principal), limit: int = Query(20, ge=1, le=MAX_PAGE),
              cursor: str | None = Query(None, max_length=200)) -> dict[str, Any]:
    svc = services(request)
    query = select(Job).where(Job.account_id == who.account_id)
    after = _uncursor("j", cursor)
    if after is not None:
        opened, _, job_id = after.partition("/")
        try:
            opened_at = float(opened)
        except ValueError as exc:
            raise Invalid("invalid cursor", code="invalid_cursor") from exc
        query = query.where(or_(Job.opened_at < opened_at, and_(Job.opened_at == opened_at, Job.job_id < job_id)))
    with svc.db.session() as s:
        rows = list(s.scalars(query.order_by(Job.opened_at.desc(), Job.job_id.desc()).limit(limit + 1)))
    items = [job_view(r, svc.blobs, svc.settings) for r in rows[:limit]]
    more = len(rows) > limit
    return {"items": items, "next_cursor": _cursor("j", f"{rows[limit - 1].opened_at!r}/{rows[limit - 1].job_id}")
            if more else None}

