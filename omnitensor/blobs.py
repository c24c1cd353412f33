"""Content-addressed blob store: bytes are kept under their SHA-256, and fetching by URI always verifies the
digest. The embedded default is a local folder; `blob://sha256/<hex>` URIs name blobs in it, `file://` and
`http(s)://` URIs are fetched and verified the same way."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.parse
from pathlib import Path

import httpx

from omnitensor.errors import OmniTensorError

BLOB_SCHEME = "blob"


class BlobError(OmniTensorError, IOError):
    """A blob could not be fetched or stored."""

    code = "blob_unavailable"


class BlobTooLarge(BlobError):
    """The blob is above the caller's size limit."""

    code = "blob_too_large"


class DigestMismatch(BlobError):
    """Fetched bytes do not hash to the expected SHA-256."""

    code = "digest_mismatch"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def blob_uri(digest: bytes) -> str:
    return f"{BLOB_SCHEME}://sha256/{digest.hex()}"


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: bytes) -> Path:
        hexd = digest.hex()
        return self.root / hexd[:2] / hexd

    def put(self, data: bytes) -> bytes:
        """Stores `data`; returns its SHA-256. Writes are atomic, so readers never see a partial blob."""
        digest = sha256(data)
        target = self.path(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        return digest

    def put_file(self, source: Path, digest: bytes) -> None:
        """Moves an already-verified file into the store under `digest`."""
        target = self.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    def has(self, digest: bytes) -> bool:
        return self.path(digest).exists()

    def get(self, digest: bytes) -> bytes:
        try:
            data = self.path(digest).read_bytes()
        except OSError as exc:
            raise BlobError(f"blob {digest.hex()} is not in the store at {self.root}") from exc
        if sha256(data) != digest:
            raise DigestMismatch(f"stored blob {digest.hex()} is corrupt")
        return data

    def fetch(self, uri: str, digest: bytes, *, max_bytes: int, timeout: float = 30.0) -> bytes:
        """The bytes at `uri`, verified against `digest` (and kept in the store)."""
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme == BLOB_SCHEME:
            try:
                named = bytes.fromhex(parsed.path.rsplit("/", 1)[-1])
            except ValueError:
                named = b""
            if named != digest:
                raise DigestMismatch(f"{uri} names a different digest than {digest.hex()}")
        if self.has(digest):
            if self.path(digest).stat().st_size > max_bytes:
                raise BlobTooLarge(f"blob {digest.hex()} is larger than {max_bytes} bytes")
            return self.get(digest)
        if parsed.scheme == BLOB_SCHEME:
            raise BlobError(f"blob {digest.hex()} is not in the store at {self.root}")
        if parsed.scheme == "file":
            path = Path(urllib.parse.unquote(parsed.path))
            try:
                if path.stat().st_size > max_bytes:
                    raise BlobTooLarge(f"{uri} is larger than {max_bytes} bytes")
                data = path.read_bytes()
            except OSError as exc:
                raise BlobError(f"cannot read {uri}: {exc}") from exc
        elif parsed.scheme in ("http", "https"):
            data = self._download(uri, max_bytes, timeout)
        else:
            raise BlobError(f"unsupported URI scheme in {uri!r}; use blob://, file:// or http(s)://")
        if sha256(data) != digest:
            raise DigestMismatch(f"{uri} does not hash to {digest.hex()}")
        self.put(data)
        return data

    @staticmethod
    def _download(uri: str, max_bytes: int, timeout: float) -> bytes:
        try:
            with httpx.stream("GET", uri, timeout=timeout, follow_redirects=True) as response:
                response.raise_for_status()
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLarge(f"{uri} is larger than {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as exc:
            raise BlobError(f"cannot download {uri}: {exc}") from exc
