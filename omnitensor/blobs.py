"""Content-addressed blob store: bytes are kept under their SHA-256, and fetching by URI always verifies the
digest. The embedded default is a local folder; `blob://sha256/<hex>` URIs name blobs in it, `http(s)://` URIs
(and, where a `FetchPolicy` allows it, `file://` URIs) are fetched into it and verified the same way.

URIs come from strangers (anyone can register a model or open a job), so fetching follows a policy: no paths on this
host, no private addresses, one deadline for the whole fetch, no redirects to other hosts, and error messages that do
not tell a remote party what exists on this host."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import socket
import stat
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from omnitensor.errors import OmniTensorError

log = logging.getLogger(__name__)

BLOB_SCHEME = "blob"
CHUNK_BYTES = 1 << 16
MAX_REDIRECTS = 3
_DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlobError(OmniTensorError, IOError):
    """A blob could not be fetched or stored."""

    code = "blob_unavailable"


class BlobTooLarge(BlobError):
    """The blob is above the caller's size limit."""

    code = "blob_too_large"


class DigestMismatch(BlobError):
    """Fetched bytes do not hash to the expected SHA-256."""

    code = "digest_mismatch"


class FetchRefused(BlobError):
    """The fetch policy forbids this URI: its scheme, its host's address, a redirect, or a path that is not a
    regular file. Malformed URIs are refused the same way."""

    code = "fetch_refused"


class FetchTimeout(BlobError):
    """The fetch did not finish within the policy's deadline."""

    code = "fetch_timeout"


@dataclass(frozen=True)
class FetchPolicy:
    """What `BlobStore.fetch_path` may do. `blob://` and `http(s)://` are always allowed; `file://` (paths on this
    host) only with `allow_file`. `allow_private` admits hosts on loopback, private, link-local and other non-global
    addresses. `deadline_s` bounds a whole fetch in seconds: name resolution, connect, TLS and every read."""

    allow_file: bool = False
    allow_private: bool = False
    deadline_s: float = 120.0


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def blob_uri(digest: bytes) -> str:
    return f"{BLOB_SCHEME}://sha256/{digest.hex()}"


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._verified: set[tuple[bytes, int, int, int]] = set()  # see _stored

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
            raise BlobError(f"blob {digest.hex()} is not in the store") from exc
        if sha256(data) != digest:
            raise DigestMismatch(f"stored blob {digest.hex()} is corrupt")
        return data

    def fetch(self, uri: str, digest: bytes, *, max_bytes: int, policy: FetchPolicy = FetchPolicy()) -> bytes:
        """The bytes at `uri`, verified against `digest` (and kept in the store); see `fetch_path`."""
        path = self.fetch_path(uri, digest, max_bytes=max_bytes, policy=policy)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise BlobError(f"cannot read stored blob {digest.hex()}: {exc.strerror or exc}") from exc

    def fetch_path(self, uri: str, digest: bytes, *, max_bytes: int, policy: FetchPolicy = FetchPolicy()) -> Path:
        """The path of the blob `digest` in the store, fetched from `uri` first if the store lacks it.

        Fetched bytes are streamed into a temporary file in the store with the size (`max_bytes`, bytes) and SHA-256
        checked on the way, then moved into place atomically; at most one chunk is in memory at a time.

        Raises `BlobTooLarge`, `DigestMismatch` (also for a corrupt copy in the store), `FetchRefused` (policy,
        malformed URI), `FetchTimeout` (past `policy.deadline_s`) or `BlobError` (anything else, e.g. the host is
        unreachable); nothing else."""
        if len(digest) != 32:
            raise BlobError(f"expected a 32-byte SHA-256 digest, got {len(digest)} bytes")
        parts = _split(uri)
        if parts.scheme == BLOB_SCHEME:
            named = _blob_digest(uri, parts)
            if named != digest:
                raise DigestMismatch(f"{uri} names a different digest than {digest.hex()}")
        elif parts.scheme == "file":
            if not policy.allow_file:
                raise FetchRefused(f"file:// URIs are not allowed here: {uri}")
        elif parts.scheme in _DEFAULT_PORTS:
            _Origin.of(uri, parts)  # malformed hosts and ports are refused even when the store has the blob
        else:
            raise FetchRefused(f"unsupported URI scheme in {uri!r}; use blob://, http(s):// or file://")
        target = self._stored(digest, max_bytes)
        if target is not None:
            return target
        if parts.scheme == BLOB_SCHEME:
            raise BlobError(f"blob {digest.hex()} is not in the store")
        try:
            with _Incoming(self, digest, max_bytes, uri) as incoming:
                if parts.scheme == "file":
                    _read_file(uri, parts, incoming)
                else:
                    _download(uri, parts, incoming, policy)
                    incoming.commit()
        except BlobError:
            raise
        except OSError as exc:  # the store's own disk: full, read-only, gone
            raise BlobError(f"cannot store blob {digest.hex()}: {exc.strerror or exc}") from exc
        target = self._stored(digest, max_bytes)
        if target is None:
            raise BlobError(f"blob {digest.hex()} vanished from the store")
        return target

    def _stored(self, digest: bytes, max_bytes: int) -> Path | None:
        """The store's copy of `digest`, or None. A copy is hashed once per file (inode, size, mtime) and process:
        fetched files were verified on the way in and only enter by atomic rename, so hashing a large model on every
        use would buy little, yet once is cheap next to loading it, and catches a damaged disk or a hand-copied file.
        """
        target = self.path(digest)
        try:
            info = target.stat()
            if info.st_size > max_bytes:
                raise BlobTooLarge(f"blob {digest.hex()} is larger than {max_bytes} bytes")
            key = (digest, info.st_ino, info.st_size, info.st_mtime_ns)
            if key not in self._verified:
                with target.open("rb") as f:
                    if hashlib.file_digest(f, "sha256").digest() != digest:
                        raise DigestMismatch(f"stored blob {digest.hex()} is corrupt")
                self._verified.add(key)
        except FileNotFoundError:
            return None
        except BlobError:
            raise
        except OSError as exc:
            raise BlobError(f"cannot read stored blob {digest.hex()}: {exc.strerror or exc}") from exc
        return target


class _Incoming:
    """A temporary file in the store that counts and hashes what is written to it; `commit` moves it into the store
    once its digest is right, and leaving the `with` block removes whatever was not committed."""

    def __init__(self, store: BlobStore, digest: bytes, max_bytes: int, uri: str) -> None:
        self.store, self.digest, self.max_bytes, self.uri = store, digest, max_bytes, uri
        self.size = 0
        self._hash = hashlib.sha256()
        # In the store's root, not the blob's subfolder, so a failed fetch leaves no empty folder behind; the same
        # filesystem either way, so the final rename stays atomic.
        fd, name = tempfile.mkstemp(dir=store.root, prefix=".tmp-")
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise BlobTooLarge(f"{self.uri} is larger than {self.max_bytes} bytes")
        self._hash.update(chunk)
        self._file.write(chunk)

    def commit(self) -> None:
        self._file.close()
        if self._hash.digest() != self.digest:
            raise DigestMismatch(f"{self.uri} does not hash to {self.digest.hex()}")
        self.store.put_file(self._tmp, self.digest)
        info = self.store.path(self.digest).stat()
        self.store._verified.add((self.digest, info.st_ino, info.st_size, info.st_mtime_ns))  # hashed on the way in

    def __enter__(self) -> _Incoming:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


def _split(uri: str) -> urllib.parse.SplitResult:
    # URIs are ASCII (RFC 3986: anything else is percent-encoded), and whitespace or control characters are where
    # parsers disagree with each other, so only printable ASCII gets as far as a parser.
    if not uri or not all("!" <= c <= "~" for c in uri):
        raise FetchRefused(f"malformed URI {uri!r}")
    try:
        return urllib.parse.urlsplit(uri)
    except ValueError as exc:
        raise FetchRefused(f"malformed URI {uri!r}") from exc


def _blob_digest(uri: str, parts: urllib.parse.SplitResult) -> bytes:
    hexd = parts.path[1:]
    if parts.netloc != "sha256" or len(hexd) != 64 or not all(c in "0123456789abcdefABCDEF" for c in hexd) \
            or parts.query or parts.fragment:
        raise FetchRefused(f"malformed URI {uri!r}; expected blob://sha256/<64 hex digits>")
    return bytes.fromhex(hexd)


# ── file:// ──────────────────────────────────────────────────────────────────────────────────────────────────────


def _read_file(uri: str, parts: urllib.parse.SplitResult, incoming: _Incoming) -> None:
    """Streams a regular file into `incoming` and commits it. Whatever goes wrong (no such path, no permission, not
    a regular file, too large, wrong digest) the message is the same "cannot use <uri>", so that a remote party
    learns nothing about which paths exist on this host; the detail goes to the debug log."""
    refused = f"cannot use {uri}"
    path = urllib.parse.unquote(parts.path)
    if parts.netloc not in ("", "localhost") or not path.startswith("/") or parts.query:
        log.debug("refused %s: not an absolute local path", uri)
        raise FetchRefused(refused)
    try:
        # lstat first so that devices are not even opened (opening some has side effects); the fstat below is the
        # check that counts, made on the descriptor itself so that a path swapped in between cannot slip through.
        # O_NONBLOCK: a FIFO swapped in must not block the open; O_NOFOLLOW: a symlink (to a device, say) is
        # refused; O_NOCTTY: a terminal must not become ours.
        fd = -1
        if stat.S_ISREG(os.lstat(path).st_mode):
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        log.debug("refused %s: %r", uri, exc)
        raise FetchRefused(refused) from exc
    if fd < 0:
        log.debug("refused %s: not a regular file", uri)
        raise FetchRefused(refused)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            log.debug("refused %s: not a regular file", uri)
            raise FetchRefused(refused)
        if info.st_size > incoming.max_bytes:
            raise BlobTooLarge(f"{uri} is larger than {incoming.max_bytes} bytes")
        while chunk := os.read(fd, CHUNK_BYTES):
            incoming.write(chunk)
        incoming.commit()
    except BlobTooLarge as exc:
        log.debug("refused %s: %s", uri, exc)
        raise BlobTooLarge(refused) from exc
    except DigestMismatch as exc:
        log.debug("refused %s: %s", uri, exc)
        raise DigestMismatch(refused) from exc
    except OSError as exc:
        log.debug("refused %s: %r", uri, exc)
        raise FetchRefused(refused) from exc
    finally:
        os.close(fd)


# ── http(s):// ───────────────────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, uri: str, parts: urllib.parse.SplitResult) -> _Origin:
        try:
            host, port = parts.hostname, parts.port
        except ValueError as exc:  # a port that is not a number, or out of range
            raise FetchRefused(f"malformed URI {uri!r}") from exc
        if not host:
            raise FetchRefused(f"malformed URI {uri!r}: no host")
        if parts.username is not None or parts.password is not None:
            raise FetchRefused(f"credentials in URIs are not supported: {uri!r}")
        return cls(parts.scheme, host, port or _DEFAULT_PORTS[parts.scheme])

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def _download(uri: str, parts: urllib.parse.SplitResult, incoming: _Incoming, policy: FetchPolicy) -> None:
    """Streams an http(s) resource into `incoming`, following same-origin redirects only."""
    origin = _Origin.of(uri, parts)
    with _Deadline(uri, policy.deadline_s) as deadline, \
            httpx.Client(trust_env=False, follow_redirects=False) as client:  # no proxy: we connect where we checked
        # Resolved once for the whole fetch: same-origin redirects reuse the addresses that passed the check, so a
        # second DNS answer cannot point them elsewhere.
        addresses = _resolve(uri, origin, deadline)
        if not policy.allow_private:
            for address in addresses:
                if not _is_public(address):
                    log.debug("refused %s: %s resolves to %s", uri, origin.host, address)
                    # The same text as when the name does not resolve: no telling which internal names exist.
                    raise FetchRefused(f"cannot use {uri}")
        for _ in range(MAX_REDIRECTS + 1):
            response = _connect(client, uri, origin, addresses, parts, deadline)
            try:
                if response.is_redirect:
                    parts = _same_origin(uri, origin, parts, response.headers["location"])
                    continue
                _receive(uri, response, incoming, deadline)
                return
            finally:
                response.close()
        raise FetchRefused(f"cannot use {uri}: more than {MAX_REDIRECTS} redirects")


def _connect(client: httpx.Client, uri: str, origin: _Origin, addresses: list[IPAddress],
             parts: urllib.parse.SplitResult, deadline: _Deadline) -> httpx.Response:
    """Sends the GET to the first of `addresses` that accepts a connection, with the URI's Host header (and, for
    https, its host name for SNI and certificate verification); returns the streaming response."""
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    extensions: dict[str, Any] = {"trace": deadline.trace}
    if origin.scheme == "https":
        extensions["sni_hostname"] = origin.host
    headers = {"Host": origin.host_header, "Accept-Encoding": "identity"}
    failure: Exception | None = None
    for address in addresses:
        literal = f"[{address}]" if address.version == 6 else str(address)
        try:
            request = client.build_request("GET", f"{origin.scheme}://{literal}:{origin.port}{target}",
                                           headers=headers, extensions=extensions,
                                           timeout=httpx.Timeout(deadline.remaining()))
            return client.send(request, stream=True)
        except httpx.ConnectError as exc:  # e.g. "localhost" is ::1 and 127.0.0.1, and only one listens
            failure = exc
        except httpx.TimeoutException as exc:
            raise FetchTimeout(f"cannot use {uri}: no answer within {deadline.seconds:g} s") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            deadline.check()
            log.debug("cannot use %s: %r", uri, exc)
            raise BlobError(f"cannot use {uri}") from exc
    deadline.check()
    log.debug("cannot use %s: %r", uri, failure)
    raise BlobError(f"cannot use {uri}: cannot connect") from failure


def _receive(uri: str, response: httpx.Response, incoming: _Incoming, deadline: _Deadline) -> None:
    if response.status_code != 200:
        log.debug("cannot use %s: HTTP %s", uri, response.status_code)
        raise BlobError(f"cannot use {uri}: HTTP {response.status_code}")
    # The digest names the bytes themselves; decoding gzip here would also let a small body expand unchecked.
    if response.headers.get("content-encoding", "identity").lower() != "identity":
        raise BlobError(f"cannot use {uri}: the server sent a Content-Encoding")
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > incoming.max_bytes:
        raise BlobTooLarge(f"{uri} is larger than {incoming.max_bytes} bytes")
    try:
        for chunk in response.iter_raw():  # as read from the socket: 64 KiB at most
            deadline.check()
            incoming.write(chunk)
    except httpx.HTTPError as exc:
        deadline.check()
        log.debug("cannot use %s: %r", uri, exc)
        raise BlobError(f"cannot use {uri}: the download broke off") from exc


def _same_origin(uri: str, origin: _Origin, parts: urllib.parse.SplitResult, location: str) -> urllib.parse.SplitResult:
    """The redirect target `location` (relative to `parts`), refused unless it has the same scheme, host and port."""
    _split(location)
    target = _split(urllib.parse.urljoin(urllib.parse.urlunsplit(parts), location))
    if target.scheme not in _DEFAULT_PORTS or _Origin.of(uri, target) != origin:
        log.debug("refused %s: redirect to %s", uri, location)
        raise FetchRefused(f"cannot use {uri}: redirect to another host")
    return target


def _resolve(uri: str, origin: _Origin, deadline: _Deadline) -> list[IPAddress]:
    """Every address `origin.host` resolves to. getaddrinfo cannot be interrupted, so it runs in a daemon thread that
    is abandoned (it ends with the resolver's own timeout) when the deadline passes first."""
    found: dict[str, Any] = {}

    def run() -> None:
        try:
            found["infos"] = socket.getaddrinfo(origin.host, origin.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError, ValueError) as exc:  # UnicodeError: IDNA refuses e.g. empty labels
            found["error"] = exc

    resolver = threading.Thread(target=run, name="blob-resolve", daemon=True)
    resolver.start()
    resolver.join(deadline.remaining())
    deadline.check()
    if "infos" not in found:
        log.debug("cannot use %s: %r", uri, found.get("error"))
        raise BlobError(f"cannot use {uri}")
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in found["infos"]:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise BlobError(f"cannot use {uri}")
    return addresses


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    return address.is_global and not (address.is_loopback or address.is_private or address.is_link_local
                                      or address.is_unspecified or address.is_multicast or address.is_reserved)


class _Deadline:
    """The end of one fetch, shared by resolution, connect, TLS and every read. httpx's timeouts apply to each
    operation on its own, so a server that sends one byte now and then would never trip them; a timer shuts the
    connection's socket down when the deadline passes, which wakes a read blocked on it."""

    def __init__(self, uri: str, seconds: float) -> None:
        self.uri, self.seconds = uri, seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def remaining(self) -> float:
        """Seconds left; raises FetchTimeout if none are."""
        self.check()
        return self.end - time.monotonic()

    def check(self) -> None:
        if self.expired or time.monotonic() >= self.end:
            raise FetchTimeout(f"cannot use {self.uri}: no answer within {self.seconds:g} s")

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx's "trace" request extension: remembers each new connection's socket."""
        if event != "connection.connect_tcp.complete" or info.get("return_value") is None:
            return
        sock = info["return_value"].get_extra_info("socket")
        if sock is None:
            return
        # A duplicate descriptor, because TLS detaches the original socket object; shutdown() through any
        # descriptor ends the connection for all of them.
        dup = sock.dup()
        with self._lock:
            self._sockets.append(dup)
            if self.expired:
                _shutdown(dup)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by the other side
        pass
