"""The fetch policy of omnitensor.blobs, against real HTTP servers on 127.0.0.1, real files, a FIFO and /dev/zero."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from omnitensor.blobs import (
    MAX_REDIRECTS,
    BlobError,
    BlobStore,
    BlobTooLarge,
    DigestMismatch,
    FetchPolicy,
    FetchRefused,
    FetchTimeout,
    blob_uri,
    sha256,
)

PAYLOAD = os.urandom(200_000)  # several chunks
DIGEST = sha256(PAYLOAD)
WRONG = sha256(b"something else")
LOCAL = FetchPolicy(allow_private=True, deadline_s=10)  # the test servers are on loopback
FILES = FetchPolicy(allow_file=True)


class Server(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 whose paths are `routes`; it records every request it receives and the body
    bytes it managed to send."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Callable[[_Handler], None]] = {}
        self.requests: list[str] = []
        self.hosts: list[str | None] = []  # the Host header of each request
        self.sent = 0
        self.stopping = threading.Event()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        self.server.hosts.append(self.headers["Host"])
        route = self.server.routes.get(self.path)
        try:
            if route is None:
                self.send_error(404)
            else:
                route(self)
        except OSError:  # the client hung up, which is what most tests here expect it to do
            self.close_connection = True

    def body(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
        self.server.sent += len(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


def ok(handler: _Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(PAYLOAD)))
    handler.end_headers()
    handler.body(PAYLOAD)


def redirect(location: Callable[[], str]) -> Callable[[_Handler], None]:
    def route(handler: _Handler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location())
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return route


def drip_body(handler: _Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    while not handler.server.stopping.is_set():
        handler.body(b"x")
        time.sleep(0.5)


def drip_headers(handler: _Handler) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
    while not handler.server.stopping.is_set():
        handler.body(b"X-Slow: 1\r\n")
        time.sleep(0.5)


def endless(declared: bool) -> Callable[[_Handler], None]:
    def route(handler: _Handler) -> None:
        handler.send_response(200)
        if declared:
            handler.send_header("Content-Length", str(10**12))
        else:
            handler.send_header("Connection", "close")  # no length: the body runs until the connection closes
        handler.end_headers()
        chunk = b"\0" * 65536
        while not handler.server.stopping.is_set() and handler.server.sent < 1 << 30:
            handler.body(chunk)
    return route


@pytest.fixture
def serve() -> Iterator[Callable[[], Server]]:
    servers: list[Server] = []

    def start() -> Server:
        server = Server()
        server.routes["/blob"] = ok
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stopping.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def server(serve: Callable[[], Server]) -> Server:
    return serve()


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def contents(store: BlobStore) -> list[str]:
    """Everything under the store's root, temporary files included."""
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*"))


def stored(digest: bytes) -> list[str]:
    return [digest.hex()[:2], f"{digest.hex()[:2]}/{digest.hex()}"]


# ── http ─────────────────────────────────────────────────────────────────────────────────────────────────────────


def test_download_lands_in_the_store_and_is_not_fetched_again(store: BlobStore, server: Server) -> None:
    path = store.fetch_path(server.url("/blob"), DIGEST, max_bytes=len(PAYLOAD), policy=LOCAL)
    assert path == store.path(DIGEST)
    assert path.read_bytes() == PAYLOAD
    assert contents(store) == stored(DIGEST)
    assert store.fetch(server.url("/blob"), DIGEST, max_bytes=len(PAYLOAD), policy=LOCAL) == PAYLOAD
    assert server.requests == ["/blob"]


def test_localhost_by_name_works_when_private_addresses_are_allowed(store: BlobStore, server: Server) -> None:
    uri = f"http://localhost:{server.port}/blob"
    assert store.fetch(uri, DIGEST, max_bytes=len(PAYLOAD), policy=LOCAL) == PAYLOAD
    assert server.hosts == [f"localhost:{server.port}"]  # connected to the checked address, named as in the URI


def test_wrong_digest_leaves_nothing_in_the_store(store: BlobStore, server: Server) -> None:
    with pytest.raises(DigestMismatch):
        store.fetch_path(server.url("/blob"), WRONG, max_bytes=len(PAYLOAD), policy=LOCAL)
    assert server.requests == ["/blob"]
    assert contents(store) == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "0.0.0.0", "2130706433", "0x7f.1",
                                  "[::ffff:127.0.0.1]", "[::]"])
def test_private_hosts_are_refused_without_a_connection(store: BlobStore, server: Server, host: str) -> None:
    with pytest.raises(FetchRefused):
        store.fetch_path(f"http://{host}:{server.port}/blob", DIGEST, max_bytes=len(PAYLOAD), policy=FetchPolicy())
    assert server.requests == []
    assert contents(store) == []


def test_redirect_to_another_port_is_refused(store: BlobStore, serve: Callable[[], Server]) -> None:
    first, other = serve(), serve()
    first.routes["/away"] = redirect(lambda: other.url("/blob"))
    with pytest.raises(FetchRefused):
        store.fetch_path(first.url("/away"), DIGEST, max_bytes=len(PAYLOAD), policy=LOCAL)
    assert first.requests == ["/away"]
    assert other.requests == []
    assert contents(store) == []


@pytest.mark.parametrize("absolute", [False, True])
def test_same_origin_redirect_is_followed(store: BlobStore, server: Server, absolute: bool) -> None:
    server.routes["/moved"] = redirect(lambda: server.url("/blob") if absolute else "/blob")
    path = store.fetch_path(server.url("/moved"), DIGEST, max_bytes=len(PAYLOAD), policy=LOCAL)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/moved", "/blob"]


def test_redirects_are_followed_a_few_hops_at_most(store: BlobStore, server: Server) -> None:
    server.routes["/loop"] = redirect(lambda: "/loop")
    with pytest.raises(FetchRefused):
        store.fetch_path(server.url("/loop"), DIGEST, max_bytes=len(PAYLOAD), policy=LOCAL)
    assert len(server.requests) == MAX_REDIRECTS + 1


@pytest.mark.parametrize("route", [drip_body, drip_headers])
def test_slow_drip_stops_at_the_deadline(store: BlobStore, server: Server, route: Callable[[_Handler], None]) -> None:
    server.routes["/drip"] = route
    start = time.monotonic()
    with pytest.raises(FetchTimeout):
        store.fetch_path(server.url("/drip"), DIGEST, max_bytes=len(PAYLOAD),
                         policy=FetchPolicy(allow_private=True, deadline_s=2))
    assert 1.9 < time.monotonic() - start < 3.0
    assert server.sent >= 2  # it did drip: the read timeout alone (2 s per read) would never have fired
    assert contents(store) == []


@pytest.mark.parametrize("declared", [False, True])
def test_endless_body_is_cut_off_at_max_bytes(store: BlobStore, server: Server, declared: bool) -> None:
    server.routes["/endless"] = endless(declared)
    start = time.monotonic()
    with pytest.raises(BlobTooLarge):
        store.fetch_path(server.url("/endless"), DIGEST, max_bytes=1 << 20, policy=LOCAL)
    assert time.monotonic() - start < 5
    assert server.sent < 64 << 20  # what the socket buffers hold past our limit, not the whole gigabyte
    assert contents(store) == []


def test_http_error_status_is_a_blob_error(store: BlobStore, server: Server) -> None:
    with pytest.raises(BlobError, match="HTTP 404"):
        store.fetch_path(server.url("/missing"), DIGEST, max_bytes=len(PAYLOAD), policy=LOCAL)
    assert contents(store) == []


# ── file:// ─────────────────────────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def payload_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.bin"
    path.write_bytes(PAYLOAD)
    return path


def test_file_uris_are_refused_unless_allowed(store: BlobStore, payload_file: Path) -> None:
    with pytest.raises(FetchRefused):
        store.fetch_path(payload_file.as_uri(), DIGEST, max_bytes=len(PAYLOAD), policy=FetchPolicy())
    with pytest.raises(FetchRefused):
        store.fetch_path("file:///dev/zero", DIGEST, max_bytes=len(PAYLOAD), policy=FetchPolicy())
    assert contents(store) == []


def test_regular_file_is_copied_into_the_store(store: BlobStore, payload_file: Path) -> None:
    path = store.fetch_path(payload_file.as_uri(), DIGEST, max_bytes=len(PAYLOAD), policy=FILES)
    assert path == store.path(DIGEST)
    assert path.read_bytes() == PAYLOAD
    assert contents(store) == stored(DIGEST)


@pytest.mark.timeout(20)  # a FIFO that blocked the open would hang here
def test_file_failures_look_the_same_from_outside(store: BlobStore, tmp_path: Path, payload_file: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "zero-link"
    link.symlink_to("/dev/zero")
    folder = tmp_path / "folder"
    folder.mkdir()
    cases: dict[str, tuple[str, bytes, int]] = {
        "device": ("file:///dev/zero", DIGEST, 1 << 20),
        "fifo": (fifo.as_uri(), DIGEST, 1 << 20),
        "symlink to a device": (link.as_uri(), DIGEST, 1 << 20),
        "directory": (folder.as_uri(), DIGEST, 1 << 20),
        "missing": ((tmp_path / "missing").as_uri(), DIGEST, 1 << 20),
        "remote host": (f"file://example.com{payload_file}", DIGEST, 1 << 20),
        "wrong digest": (payload_file.as_uri(), WRONG, 1 << 20),
        "too large": (payload_file.as_uri(), DIGEST, 1000),
    }
    if os.geteuid() != 0:  # root reads anything
        unreadable = tmp_path / "unreadable"
        unreadable.write_bytes(PAYLOAD)
        unreadable.chmod(0)
        cases["permission denied"] = (unreadable.as_uri(), DIGEST, 1 << 20)
    messages = {}
    for name, (uri, digest, max_bytes) in cases.items():
        with pytest.raises(BlobError) as caught:
            store.fetch_path(uri, digest, max_bytes=max_bytes, policy=FILES)
        expected = {"wrong digest": DigestMismatch, "too large": BlobTooLarge}.get(name, FetchRefused)
        assert type(caught.value) is expected, name
        messages[name] = str(caught.value).replace(uri, "<uri>")
    assert set(messages.values()) == {"cannot use <uri>"}, messages
    assert contents(store) == []


# ── blob:// and the store's own copies ─────────────────────────────────────────────────────────────────────────


def test_blob_uri_names_a_stored_blob(store: BlobStore) -> None:
    digest = store.put(PAYLOAD)
    assert store.fetch_path(blob_uri(digest), digest, max_bytes=len(PAYLOAD)) == store.path(digest)
    with pytest.raises(BlobTooLarge):
        store.fetch_path(blob_uri(digest), digest, max_bytes=len(PAYLOAD) - 1)
    with pytest.raises(DigestMismatch):
        store.fetch_path(blob_uri(digest), WRONG, max_bytes=len(PAYLOAD))
    with pytest.raises(BlobError):
        store.fetch_path(blob_uri(WRONG), WRONG, max_bytes=len(PAYLOAD))
    with pytest.raises(FetchRefused):
        store.fetch_path("blob://sha256/zz", digest, max_bytes=len(PAYLOAD))


def test_corrupt_store_copy_is_detected(store: BlobStore) -> None:
    store.path(DIGEST).parent.mkdir(parents=True)
    store.path(DIGEST).write_bytes(b"not the payload")
    with pytest.raises(DigestMismatch):
        store.fetch(blob_uri(DIGEST), DIGEST, max_bytes=len(PAYLOAD))


# ── malformed URIs ───────────────────────────────────────────────────────────────────────────────────────────────

MALFORMED = ["", "http://[::1", "https://[::1]:99999/", "http://host:port/", "blob://sha256/zz", "blob://md5/00",
             "http://exämple.com/", "http://a b/", "http:///path", "http://user:pw@[::1]/", "ftp://[::1]/x",
             "http://a..b/", "file:relative/path", "file:///nul%00byte"]


@pytest.mark.parametrize("uri", MALFORMED)
def test_malformed_uris_are_refused(store: BlobStore, uri: str) -> None:
    with pytest.raises(BlobError):
        store.fetch_path(uri, DIGEST, max_bytes=1 << 20, policy=FILES)


# Hosts stay the IP literal [::1] (refused as private before any connection) so that fuzzing sends no DNS queries.
PREFIXES = ["", "http://[::1]", "https://[::1]:1", "http://[", "blob://", "blob://sha256/", "file://", "file:///",
            "file:///dev/"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(PREFIXES), rest=st.text(max_size=80))
def test_arbitrary_uris_raise_only_blob_errors(store: BlobStore, prefix: str, rest: str) -> None:
    uri = prefix + rest
    assume(prefix.startswith("http") or not uri.lower().startswith(("http:", "https:")))
    try:
        store.fetch_path(uri, DIGEST, max_bytes=1 << 16, policy=FetchPolicy(allow_file=True, deadline_s=5))
    except BlobError:
        pass
