"""The chunked upload flow shared by models and datasets: session status, chunks, completion (verify,
validate, store by digest, register on-chain)."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from backend.db import Upload
from backend.deps import account_of, errors, principal, services
from backend.errors import Invalid, TooLarge
from backend.network import FORMATS
from backend.schemas import ChunkReceived, CompleteUpload, UploadSession
from backend.security import Principal
from backend.services import Services
from omnitensor import sandbox
from omnitensor.blobs import blob_uri
from omnitensor.failures import FailureCode, JobFailure
from omnitensor.sandbox import Limits

router = APIRouter(tags=["uploads"])
UploadId = PathParam(pattern=r"^upl_[0-9a-f]{24}$", description="from the upload's creation")
CHUNK_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": {
    "schema": {"type": "string", "format": "binary"}}}}}


def session_view(svc: Services, row: Upload) -> dict[str, Any]:
    result = None
    if row.resource_id is not None:
        result = {"id": row.resource_id, "tx_hash": row.tx_hash, "block": row.block}
    return {
        "upload_id": row.id, "kind": row.kind, "status": row.status, "size": row.size, "sha256": row.sha256,
        "chunk_size": row.chunk_size, "chunk_count": row.chunk_count, "received": svc.uploads.received(row.id),
        "expires_at": row.expires_at, "chunk_url": f"/uploads/{row.id}/chunks/{{index}}",
        "complete_url": f"/uploads/{row.id}/complete", "result": result,
    }


def blob_location(svc: Services, digest: bytes) -> str:
    if svc.settings.public_url:
        return f"{svc.settings.public_url.rstrip('/')}/blobs/{digest.hex()}"
    return blob_uri(digest)


def validate_model(svc: Services, fmt: str, data: bytes) -> None:
    """Loads the model as its declared format, as a node would, in a sandboxed worker with the API's memory and
    time limits (a hostile model can only take that worker down); pickles and external data are refused."""
    s = svc.settings
    s.data_dir.mkdir(parents=True, exist_ok=True)
    limits = Limits(memory_bytes=s.validate_memory_bytes, load_timeout_s=s.validate_timeout_s)
    with tempfile.NamedTemporaryFile(dir=s.data_dir, prefix=".validate-", suffix=f".{fmt}") as f:
        f.write(data)
        f.flush()
        try:
            sandbox.validate_model(Path(f.name), FORMATS.index(fmt), limits)
        except JobFailure as exc:
            if exc.failure == FailureCode.UNKNOWN_FORMAT:
                raise Invalid(f"this server cannot load {fmt} models: {exc.detail}", code="format_unsupported") \
                    from exc
            raise Invalid(f"not a loadable {fmt} model: {exc.detail}", code="invalid_model") from exc


def complete(svc: Services, who: Principal, row: Upload, sha256: str, key: str) -> tuple[int, dict[str, Any]]:
    """Verifies and registers an upload; safe to repeat (a registered upload returns its result)."""
    if row.resource_id is None:
        data = svc.uploads.assemble(row, sha256)
        if row.kind == "model":
            validate_model(svc, row.format or "", data)
        digest = svc.blobs.put(data)
        uri = blob_location(svc, digest)
        account = account_of(svc, who)
        if row.kind == "model":
            call = svc.net.calldata("Registry", "registerModel", digest, FORMATS.index(row.format or ""),
                                    int(row.price_wei or 0), uri, row.name)
        else:
            call = svc.net.calldata("Registry", "registerDataset", digest, row.size, uri,
                                    json.dumps({"name": row.name, **json.loads(row.meta)}, separators=(",", ":")))
        receipt, events = svc.relay.submit(account, "Registry", call, action=f"register_{row.kind}", key=key)
        registered = next(e for e in events if e.name in ("ModelRegistered", "DatasetRegistered"))
        row = svc.uploads.mark_registered(row.id, registered.args["modelId" if row.kind == "model" else "datasetId"],
                                          receipt["transactionHash"], registered.block_number)
        svc.uploads.discard(row)
    digest = bytes.fromhex(row.sha256)
    return 201, {f"{row.kind}_id": row.resource_id, "digest": "0x" + row.sha256, "uri": blob_location(svc, digest),
                 "tx_hash": row.tx_hash, "block": row.block, "upload_id": row.id}


async def single_upload(request: Request, svc: Services, who: Principal, kind: str, sha256: str | None,
                        max_bytes: int, **fields: Any) -> JSONResponse:
    """A small file as one request body: checked against the client's SHA-256 when given, then the same
    session, chunk and completion as a chunked upload."""
    size = check_single_size(svc, request)
    data = await request.body()
    if len(data) != size:
        raise Invalid("the body is shorter than its Content-Length", code="chunk_size_mismatch")
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and sha256.lower() != digest:
        raise Invalid("the body does not hash to the given SHA-256", code="sha256_mismatch",
                      details={"received_sha256": digest})
    row = await run_in_threadpool(svc.uploads.create, who.account_id, kind, size=size, sha256=digest,
                                  max_bytes=max_bytes, single=True, **fields)

    async def body() -> AsyncIterator[bytes]:
        yield data

    await svc.uploads.put_chunk(row, 0, body())
    return await request.app.state.idempotency.run(request, svc, who, lambda key: complete(svc, who, row, digest, key))


def check_single_size(svc: Services, request: Request) -> int:
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise Invalid("a one-request upload needs a Content-Length", code="length_required")
    size = int(declared)
    if size > svc.settings.single_upload_bytes:
        raise TooLarge(f"one-request uploads are limited to {svc.settings.single_upload_bytes} bytes; create a "
                       "chunked upload with a JSON body instead", code="upload_too_large")
    if size == 0:
        raise Invalid("the file is empty", code="empty_upload")
    return size


@router.get("/uploads/{upload_id}", response_model=UploadSession, responses=errors(401, 404),
            summary="An upload's state: which chunks arrived (to resume after a disconnect)")
def upload_status(request: Request, upload_id: str = UploadId, who: Principal = Depends(principal)) -> dict[str, Any]:
    svc = services(request)
    return session_view(svc, svc.uploads.get(who.account_id, upload_id))


@router.put("/uploads/{upload_id}/chunks/{index}", response_model=ChunkReceived, openapi_extra=CHUNK_BODY,
            responses=errors(401, 404, 409, 413, 416), summary="Send one chunk (any order; re-sending is harmless)")
async def put_chunk(request: Request, upload_id: str = UploadId, index: int = PathParam(ge=0, le=2**31),
                    who: Principal = Depends(principal)) -> dict[str, Any]:
    svc = services(request)
    row = await run_in_threadpool(svc.uploads.get, who.account_id, upload_id)
    size = await svc.uploads.put_chunk(row, index, request.stream())
    received = await run_in_threadpool(svc.uploads.received, row.id)
    return {"upload_id": row.id, "index": index, "size": size, "received": len(received),
            "chunk_count": row.chunk_count}


@router.post("/uploads/{upload_id}/complete", status_code=201, responses={
    201: {"description": "registered on-chain: a model's `model_id` or a dataset's `dataset_id`, with the "
          "transaction", "content": {"application/json": {"example": {
              "model_id": 7, "digest": "0x…", "uri": "blob://sha256/…", "tx_hash": "0x…", "block": 42,
              "upload_id": "upl_…"}}}},
    **errors(401, 402, 404, 409, 428, 502, 504)}, summary="Verify the SHA-256, validate and register")
async def complete_upload(request: Request, body: CompleteUpload, upload_id: str = UploadId,
                          who: Principal = Depends(principal)) -> JSONResponse:
    svc = services(request)
    row = await run_in_threadpool(svc.uploads.get, who.account_id, upload_id)
    return await request.app.state.idempotency.run(
        request, svc, who, lambda key: complete(svc, who, row, body.sha256, key))
