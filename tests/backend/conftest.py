"""Backend fixtures: the real app (FastAPI TestClient over httpx) on the test chain, with its own SQLite
file and blob folder, a relayer key, and real oracle nodes reading the same blob folder."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from backend.app import create_app
from backend.settings import ApiSettings
from omnitensor.anvil import dev_keys
from oracle import demo
from oracle.background import BackgroundNode
from tests.support import OMNIT, ROLES, Net, node_settings

ADMIN_TOKEN = "admin-test-token"
SECRET = "test-secret-0123456789"


@pytest.fixture(scope="session")
def onnx_model() -> bytes:
    return demo.digits_onnx()


POSTGRES_URL = os.environ.get("OMNITENSOR_TEST_POSTGRES_URL")  # e.g. postgresql+psycopg://user@127.0.0.1:5432


def database_url(tmp: Path) -> str:
    """A SQLite file in the test's folder, or, with OMNITENSOR_TEST_POSTGRES_URL set, a fresh PostgreSQL database
    for this test (the same one for every call in the test, so restarts find their data)."""
    if not POSTGRES_URL:
        return f"sqlite:///{tmp / 'api.db'}"
    marker = tmp / "postgres-db"
    if not marker.exists():
        name = f"omnitensor_test_{uuid.uuid4().hex[:12]}"
        engine = create_engine(f"{POSTGRES_URL}/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        marker.write_text(name)
    return f"{POSTGRES_URL}/{marker.read_text()}"


def api_settings(net: Net, tmp: Path, **overrides: Any) -> ApiSettings:
    manifest = tmp / "manifest.json"
    if not manifest.exists():
        net.manifest.save(manifest)
    values: dict[str, Any] = {
        "rpc_url": net.chain.rpc_url, "manifest": manifest, "database_url": database_url(tmp),
        "data_dir": tmp / "api", "blob_dir": tmp / "blobs", "secret": SECRET, "admin_token": ADMIN_TOKEN,
        "relayer_private_key": dev_keys()[ROLES.index("relayer")], "scrypt_n": 2**10,
        "siwe_domain": "api.test", "idle_poll_interval": 0.05, "refund_interval_s": 0.5,
    }
    values.update(overrides)
    return ApiSettings(**values)


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Asserts the API's one error body, with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code, body
    assert set(body) == {"code", "message", "details", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    return body


class Api:
    """A running app and helpers to act as its users."""

    def __init__(self, net: Net, client: TestClient, settings: ApiSettings) -> None:
        self.net = net
        self.client = client
        self.settings = settings
        self.nodes: list[BackgroundNode] = []

    def account(self, label: str = "", deposit: int = 0, wallet: int = 0) -> dict[str, Any]:
        """A new custodial account, signed in: {"id", "address", "api_key", "headers", "refresh_token"}."""
        created = self.client.post("/admin/accounts", json={"label": label},
                                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert created.status_code == 201, created.text
        body = created.json()
        tokens = self.token(body["api_key"])
        user = {"id": body["account"]["id"], "address": body["account"]["address"], "api_key": body["api_key"],
                "headers": {"Authorization": f"Bearer {tokens['access_token']}"},
                "refresh_token": tokens["refresh_token"]}
        if wallet or deposit:
            self.net.send("admin", self.net.token.functions.transfer(user["address"], wallet + deposit))
        if deposit:
            r = self.client.post("/account/deposit", json={"amount_wei": str(deposit)}, headers=user["headers"])
            assert r.status_code == 200, r.text
        return user

    def token(self, api_key: str) -> dict[str, Any]:
        r = self.client.post("/auth/token", json={"grant_type": "api_key", "api_key": api_key})
        assert r.status_code == 200, r.text
        return r.json()

    def wait_job(self, user: dict[str, Any], job_id: str | int, timeout: float = 30) -> dict[str, Any]:
        """The job's resource once it is no longer pending (the restarted API may answer 404 for a moment)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = self.client.get(f"/ai/jobs/{job_id}", headers=user["headers"])
            if r.status_code == 200 and r.json()["status"] != "pending":
                return r.json()
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id}: {r.status_code} {r.text}")

    def start_node(self, role: str = "node1", **overrides: Any) -> BackgroundNode:
        self.net.omnit(role, 100 * OMNIT)
        node = BackgroundNode(node_settings(self.net, role, **{
            "manifest": self.settings.manifest, "blob_dir": self.settings.blob_dir,
            "state_db": self.settings.data_dir / f"{role}.db", "poll_interval": 0.01, **overrides}))
        self.nodes.append(node)
        return node

    def upload_model(self, user: dict[str, Any], data: bytes, *, name: str = "digits", fmt: str = "onnx",
                     price: int = OMNIT // 50) -> dict[str, Any]:
        r = self.client.post("/ai/models/upload", content=data, headers={
            **user["headers"], "Content-Type": "application/octet-stream"}, params={
            "name": name, "format": fmt, "price_wei": str(price), "sha256": hashlib.sha256(data).hexdigest()})
        assert r.status_code == 201, r.text
        return r.json()


@pytest.fixture
def api(net: Net, tmp_path: Path) -> Iterator[Api]:
    settings = api_settings(net, tmp_path)
    with TestClient(create_app(settings)) as client:
        running = Api(net, client, settings)
        yield running
        for node in running.nodes:
            node.stop()
