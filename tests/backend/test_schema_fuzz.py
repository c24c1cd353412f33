"""schemathesis against the API's own OpenAPI document, over real HTTP, with two identities: no 5xx, every
response matches its declared status and schema, and one account never sees another's resources."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks

from backend.app import create_app
from omnitensor.anvil import free_port
from tests.backend.conftest import Api, api_settings
from tests.support import OMNIT, Net

EXAMPLES_PER_OPERATION = 20
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance]


class LiveServer:
    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live(net: Net, tmp_path: Path) -> Iterator[tuple[str, Api]]:
    import httpx

    settings = api_settings(net, tmp_path, requests_per_minute=100_000, chunk_bytes=1024)
    with LiveServer(create_app(settings)) as url, httpx.Client(base_url=url) as client:
        yield url, Api(net, client, settings)  # type: ignore[arg-type]


def test_the_openapi_document_holds_under_fuzzing_for_two_identities(live: tuple[str, Api]) -> None:
    url, api = live
    api.net.register_node("node1")
    alice = api.account(deposit=OMNIT, wallet=OMNIT)
    bob = api.account(deposit=OMNIT, wallet=OMNIT)
    # Alice's private resources, whose ids the fuzzer also tries as Bob.
    upload = api.client.post("/ai/models/upload", headers=alice["headers"], json={
        "name": "alice-model", "format": "onnx", "price_wei": "1", "size": 10, "sha256": "ab" * 32}).json()
    allocation = api.client.post("/compute/allocate", json={"gpu_seconds": 5}, headers=alice["headers"]).json()
    alice_ids = {"upload_id": upload["upload_id"], "allocation_id": allocation["allocation_id"]}

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    seen: dict[str, int] = {}
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:
            label = f"{case.method.upper()} {case.path}"
            n = seen[label] = seen.get(label, 0) + 1
            me, other = (alice, bob) if n % 2 else (bob, alice)
            borrowed = False
            for name, value in alice_ids.items():
                if name not in (case.path_parameters or {}):
                    continue
                if me is bob:  # Bob's calls aim at Alice's resources
                    case.path_parameters[name] = value
                    borrowed = True
                elif case.path_parameters[name] == value:  # Alice leaves hers alone, so the end check means Bob
                    case.path_parameters[name] = 10**9 if name == "allocation_id" else "upl_" + "0" * 24
            response = case.call(base_url=url, headers={"Authorization": me["headers"]["Authorization"]})
            statuses[response.status_code // 100] = statuses.get(response.status_code // 100, 0) + 1
            case.validate_response(response, checks=CHECKS)
            assert other["address"].lower() not in response.text.lower(), f"{label} leaked {other['id']}'s address"
            assert other["id"] not in response.text
            if borrowed and case.method in ("GET", "PUT") or borrowed and "close" in case.path:
                assert response.status_code in (401, 404, 422, 429), f"{label}: Bob reached Alice's resource"

        fuzz()
    assert len(seen) >= 20, sorted(seen)
    assert statuses.get(2, 0) >= 50, statuses  # the fuzzer got past validation, into the handlers
    print(f"fuzzed {sum(seen.values())} requests over {len(seen)} operations; status classes: {statuses}")
    # Alice's resources came through untouched.
    assert api.client.get(f"/uploads/{upload['upload_id']}", headers=alice["headers"]).json()["received"] == []
    assert not api.client.get(f"/compute/allocations/{allocation['allocation_id']}",
                              headers=alice["headers"]).json()["closed"]
