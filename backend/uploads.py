"""Chunked, resumable uploads of models and datasets. A session fixes the file's size and SHA-256 up front;
chunks (fixed size, the last one shorter) arrive in any order, each written atomically to its own file, so a
disconnect or a restart loses at most the chunk in flight. Completing checks the client's SHA-256 against the
assembled bytes and moves the file into the content-addressed blob store."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from backend.db import Database, Upload, UploadChunk
from backend.errors import Conflict, Invalid, NotFound, RangeNotSatisfiable, TooLarge
from backend.security import new_id
from omnitensor.blobs import BlobStore


class UploadStore:
    def __init__(self, root: Path, db: Database, blobs: BlobStore, *, chunk_bytes: int, ttl_s: int) -> None:
        self.root = Path(root) / "uploads"
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = db
        self.blobs = blobs
        self.chunk_bytes = chunk_bytes
        self.ttl_s = ttl_s

    def create(self, account_id: str, kind: str, *, size: int, sha256: str, max_bytes: int, name: str = "",
               fmt: str | None = None, price_wei: str | None = None, meta: dict[str, Any] | None = None,
               single: bool = False) -> Upload:
        """A new session; `single`: the whole file arrives as one chunk (a one-request upload)."""
        if size > max_bytes:
            raise TooLarge(f"a {kind} may be at most {max_bytes} bytes; this one is {size}", code="upload_too_large",
                           details={"max_bytes": max_bytes})
        chunk = size if single else min(self.chunk_bytes, size)
        row = Upload(id=new_id("upl"), account_id=account_id, kind=kind, name=name, format=fmt, price_wei=price_wei,
                     meta=json.dumps(meta or {}), size=size, sha256=sha256.lower(), chunk_size=chunk,
                     chunk_count=-(-size // chunk), expires_at=time.time() + self.ttl_s)
        with self.db.session() as s:
            s.add(row)
        (self.root / row.id).mkdir()
        return row

    def get(self, account_id: str, upload_id: str) -> Upload:
        with self.db.session() as s:
            row = s.get(Upload, upload_id)
        if row is None or row.account_id != account_id:  # another account's upload does not exist for you
            raise NotFound(f"no upload {upload_id}", code="upload_not_found")
        return row

    def received(self, upload_id: str) -> list[int]:
        with self.db.session() as s:
            return sorted(s.scalars(select(UploadChunk.index).filter_by(upload_id=upload_id)))

    def expected_size(self, row: Upload, index: int) -> int:
        if not 0 <= index < row.chunk_count:
            raise RangeNotSatisfiable(f"chunk {index} is out of range: this upload has chunks 0..{row.chunk_count - 1}",
                                      details={"chunk_count": row.chunk_count})
        return row.chunk_size if index < row.chunk_count - 1 else row.size - row.chunk_size * (row.chunk_count - 1)

    async def put_chunk(self, row: Upload, index: int, body: AsyncIterator[bytes]) -> int:
        if row.status != "open" or row.expires_at < time.time():
            raise Conflict(f"upload {row.id} is {row.status if row.status != 'open' else 'expired'}",
                           code="upload_closed")
        expected = self.expected_size(row, index)
        fd, tmp = tempfile.mkstemp(dir=self.root / row.id, prefix=".part-")
        written = 0
        try:
            with os.fdopen(fd, "wb") as f:
                async for piece in body:
                    written += len(piece)
                    if written > expected:
                        raise TooLarge(f"chunk {index} must be {expected} bytes", code="chunk_too_large",
                                       details={"expected_bytes": expected})
                    f.write(piece)
            if written != expected:
                raise Invalid(f"chunk {index} must be {expected} bytes, got {written}", code="chunk_size_mismatch",
                              details={"expected_bytes": expected})
            os.replace(tmp, self.root / row.id / f"{index}.chunk")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        with self.db.session() as s:
            if s.get(UploadChunk, (row.id, index)) is None:
                s.add(UploadChunk(upload_id=row.id, index=index, size=written))
        return written

    def assemble(self, row: Upload, sha256: str) -> bytes:
        """The whole file, verified against the session's and the client's SHA-256; its chunks are kept until
        the caller calls `discard`, so a failed registration can be completed again."""
        if sha256.lower() != row.sha256:
            raise Invalid("the SHA-256 given at completion differs from the one the upload was created with",
                          code="sha256_mismatch")
        missing = sorted(set(range(row.chunk_count)) - set(self.received(row.id)))
        if missing:
            raise Conflict(f"{len(missing)} chunks are missing", code="upload_incomplete",
                           details={"missing": missing[:1000]})
        digest = hashlib.sha256()
        parts = []
        for index in range(row.chunk_count):
            data = (self.root / row.id / f"{index}.chunk").read_bytes()
            digest.update(data)
            parts.append(data)
        if digest.hexdigest() != row.sha256:
            raise Invalid("the uploaded bytes do not hash to the declared SHA-256; re-send the chunks",
                          code="sha256_mismatch", details={"received_sha256": digest.hexdigest()})
        return b"".join(parts)

    def mark_registered(self, upload_id: str, resource_id: int, tx_hash: str, block: int) -> Upload:
        with self.db.session() as s:
            row = s.get(Upload, upload_id)
            if row.resource_id is None:  # type: ignore[union-attr]
                row.resource_id, row.tx_hash, row.block, row.status = resource_id, tx_hash, block, "complete"  # type: ignore[union-attr]
            return row  # type: ignore[return-value]

    def discard(self, row: Upload) -> None:
        shutil.rmtree(self.root / row.id, ignore_errors=True)
