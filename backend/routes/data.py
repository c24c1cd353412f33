"""Datasets: the chunked upload flow, and metadata of any dataset on the network."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from backend.deps import errors, parse_body, principal, services
from backend.errors import Invalid
from backend.network import topic_int
from backend.routes.uploads import session_view, single_upload
from backend.schemas import DatasetMetadata, DatasetUploadRequest, Name
from backend.security import Principal

router = APIRouter(tags=["data"])
UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": DatasetUploadRequest.model_json_schema(), "example": {
        "name": "digits-test", "size": 1048576,
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "metadata": {"license": "CC-BY-4.0", "rows": 360}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}}}


@router.post("/data/upload", status_code=201, openapi_extra=UPLOAD_BODY, responses={
    201: {"description": "JSON body: a chunked upload session. Binary body: the dataset, registered "
          "(`RegisteredDataset`).", "content": {"application/json": {"schema": {"anyOf": [
              {"$ref": "#/components/schemas/UploadSession"},
              {"$ref": "#/components/schemas/RegisteredDataset"}]}}}},
    **errors(401, 409, 413, 428, 502, 504)}, summary="Upload a dataset: a chunked session (JSON) or the whole file")
async def upload_dataset(
    request: Request, who: Principal = Depends(principal),
    name: Name | None = Query(None, description="binary uploads: the dataset's name"),
    sha256: str | None = Query(None, pattern=r"^[0-9a-fA-F]{64}$", description="binary uploads: checked if given"),
) -> JSONResponse:
    """Same flow as models: chunks in any order, resumable, verified by SHA-256 at completion, stored by
    digest and registered on-chain with its size, URI and metadata."""
    svc = services(request)
    if request.headers.get("content-type", "").startswith("application/octet-stream"):
        if name is None:
            raise Invalid("a binary upload needs the name query parameter", code="validation_error")
        return await single_upload(request, svc, who, "dataset", sha256, svc.settings.max_dataset_bytes, name=name)
    spec = parse_body(DatasetUploadRequest, await request.body())
    if len(json.dumps(spec.metadata)) > 3500:  # the registry keeps at most 4096 bytes of metadata text
        raise Invalid("metadata is limited to 3500 bytes of JSON", code="metadata_too_large")
    row = await run_in_threadpool(svc.uploads.create, who.account_id, "dataset", size=spec.size, sha256=spec.sha256,
                                  max_bytes=svc.settings.max_dataset_bytes, name=spec.name, meta=spec.metadata)
    return JSONResponse(session_view(svc, row), 201, headers={"Location": f"/uploads/{row.id}"})


@router.get("/data/{dataset_id}/metadata", response_model=DatasetMetadata, responses=errors(401, 404),
            summary="Owner, digest, size, URI, metadata and registration of a dataset")
def dataset_metadata(request: Request, dataset_id: int = Path(ge=1, le=2**64 - 1),
                     who: Principal = Depends(principal)) -> dict[str, Any]:
    svc = services(request)
    (record,) = svc.net.views(("Registry", "getDataset", (dataset_id,)))
    _, owner, size, registered_at, digest, uri, metadata = record
    registered = svc.net.logs("Registry", "DatasetRegistered", topic_int(dataset_id))
    try:
        parsed: dict[str, Any] | str = json.loads(metadata)
    except ValueError:
        parsed = metadata  # registered by someone else, directly on-chain, as plain text
    name = parsed.get("name") if isinstance(parsed, dict) else None
    return {"dataset_id": dataset_id, "owner": owner, "name": name if isinstance(name, str) else None,
            "digest": "0x" + digest.hex(), "size_bytes": size, "uri": uri, "metadata": parsed,
            "registered_at": registered_at, "tx_hash": registered[0].tx_hash if registered else None,
            "block": registered[0].block_number if registered else None}
