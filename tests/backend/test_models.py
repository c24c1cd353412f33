"""Model uploads (chunked, resumable, one-request), validation, listing with cursors."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

from fastapi.testclient import TestClient

from backend.app import create_app
from tests.backend.conftest import Api, api_settings, error
from tests.support import OMNIT, Net


def create_upload(api: Api, user: dict, data: bytes, name: str = "digits", fmt: str = "onnx", **extra) -> dict:
    r = api.client.post("/ai/models/upload", headers=user["headers"], json={
        "name": name, "format": fmt, "price_wei": str(OMNIT // 50), "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(), **extra})
    assert r.status_code == 201, r.text
    return r.json()


def put_chunk(api: Api, user: dict, upload: dict, index: int, data: bytes):
    return api.client.put(f"/uploads/{upload['upload_id']}/chunks/{index}", content=data,
                          headers={**user["headers"], "Content-Type": "application/octet-stream"})


def test_chunked_upload_in_any_order_resumes_and_registers(net: Net, tmp_path: Path, onnx_model: bytes) -> None:
    settings = api_settings(net, tmp_path, chunk_bytes=4096)
    with TestClient(create_app(settings)) as client:
        api = Api(net, client, settings)
        user = api.account()
        upload = create_upload(api, user, onnx_model)
        size = upload["chunk_size"]
        assert size == 4096
        assert upload["chunk_count"] == -(-len(onnx_model) // 4096)
        chunks = [onnx_model[i:i + size] for i in range(0, len(onnx_model), size)]
        order = list(reversed(range(len(chunks))))
        for index in order[: len(order) // 2]:  # half of them, last chunk first
            assert put_chunk(api, user, upload, index, chunks[index]).status_code == 200
        # "Disconnect": the client asks which chunks arrived and sends only the rest.
        status = client.get(f"/uploads/{upload['upload_id']}", headers=user["headers"]).json()
        assert status["received"] == sorted(order[: len(order) // 2])
        error(client.post(f"/uploads/{upload['upload_id']}/complete", headers=user["headers"],
                          json={"sha256": upload["sha256"]}), 409, "upload_incomplete")
        for index in set(range(len(chunks))) - set(status["received"]):
            assert put_chunk(api, user, upload, index, chunks[index]).status_code == 200
        assert put_chunk(api, user, upload, 0, chunks[0]).status_code == 200  # re-sending is harmless
        done = client.post(f"/uploads/{upload['upload_id']}/complete", headers=user["headers"],
                           json={"sha256": upload["sha256"]})
        assert done.status_code == 201, done.text
        result = done.json()
        assert result["digest"] == "0x" + hashlib.sha256(onnx_model).hexdigest()
        (model,) = net.call(net.registry.functions.getModels(result["model_id"], 1))
        assert model[1] == user["address"]  # the account owns it, not the relayer
        assert "0x" + model[6].hex() == result["digest"]
        assert model[4] == 0  # ONNX
        # Stored by digest where nodes read it; the chunks are gone.
        stored = settings.blob_dir / result["digest"][2:4] / result["digest"][2:]
        assert stored.read_bytes() == onnx_model
        assert not (settings.data_dir / "uploads" / upload["upload_id"]).exists()
        # Completing again answers the same registration.
        again = client.post(f"/uploads/{upload['upload_id']}/complete", headers=user["headers"],
                            json={"sha256": upload["sha256"]})
        assert again.json()["model_id"] == result["model_id"]
        assert again.json()["tx_hash"] == result["tx_hash"]


def test_upload_errors(net: Net, tmp_path: Path, onnx_model: bytes) -> None:
    settings = api_settings(net, tmp_path, chunk_bytes=4096, max_model_bytes=1 << 20)
    with TestClient(create_app(settings)) as client:
        api = Api(net, client, settings)
        user = api.account()
        upload = create_upload(api, user, onnx_model)
        last = upload["chunk_count"] - 1
        error(put_chunk(api, user, upload, last + 1, b"x"), 416, "chunk_out_of_range")
        error(put_chunk(api, user, upload, 0, b"x" * 5000), 413, "chunk_too_large")
        error(put_chunk(api, user, upload, 0, b"x" * 100), 422, "chunk_size_mismatch")
        error(client.post("/ai/models/upload", headers=user["headers"], json={
            "name": "big", "format": "onnx", "price_wei": "1", "size": (1 << 20) + 1, "sha256": "0" * 64}),
            413, "upload_too_large")
        # Corrupted chunks: the SHA-256 check at completion catches them.
        for index in range(upload["chunk_count"]):
            size = 4096 if index < last else len(onnx_model) - 4096 * last
            put_chunk(api, user, upload, index, b"\x00" * size)
        error(client.post(f"/uploads/{upload['upload_id']}/complete", headers=user["headers"],
                          json={"sha256": upload["sha256"]}), 422, "sha256_mismatch")
        error(client.post(f"/uploads/{upload['upload_id']}/complete", headers=user["headers"],
                          json={"sha256": "ab" * 32}), 422, "sha256_mismatch")
        # Another account cannot see or feed this upload.
        other = api.account()
        error(client.get(f"/uploads/{upload['upload_id']}", headers=other["headers"]), 404, "upload_not_found")
        error(put_chunk(api, other, upload, 0, b"x" * 4096), 404, "upload_not_found")
        assert net.call(net.registry.functions.modelCount()) == 0


def test_names_cannot_traverse_paths(api: Api, onnx_model: bytes, tmp_path: Path) -> None:
    user = api.account()
    for name in ("../../etc/passwd", "..", "a/b", "/abs", "x\x00y"):
        r = api.client.post("/ai/models/upload", headers=user["headers"], json={
            "name": name, "format": "onnx", "price_wei": "1", "size": 10, "sha256": "0" * 64})
        error(r, 422, "validation_error")
    error(api.client.get("/uploads/..%2F..%2Fapi.db", headers=user["headers"]), 404, "not_found")
    error(api.client.put("/uploads/upl_000000000000000000000000/chunks/-1", content=b"x",
                         headers=user["headers"]), 422, "validation_error")
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")}
    assert all(not str(p).startswith("..") for p in written)
    assert not (tmp_path.parent / "passwd").exists()


def test_a_pickle_posing_as_a_model_never_runs(api: Api, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):  # noqa: ANN204 - the classic pickle payload
            return (os.system, (f"touch {sentinel}",))

    payload = pickle.dumps(Exploit())
    user = api.account()
    for fmt in ("onnx", "torchscript"):
        r = api.client.post("/ai/models/upload", content=payload, headers={
            **user["headers"], "Content-Type": "application/octet-stream"},
            params={"name": "innocent", "format": fmt, "price_wei": "1"})
        error(r, 422, "invalid_model")
    assert not sentinel.exists()
    assert api.net.call(api.net.registry.functions.modelCount()) == 0


def test_listing_pages_without_gaps_or_duplicates(api: Api, onnx_model: bytes) -> None:
    alice, bob = api.account(), api.account()
    ids = [api.upload_model(alice if i % 2 else bob, onnx_model, name=f"m{i}")["model_id"] for i in range(5)]
    first = api.client.get("/ai/models", params={"limit": 2}, headers=alice["headers"]).json()
    assert [m["model_id"] for m in first["items"]] == ids[:2]
    # Models registered between pages come after the cursor: nothing repeats or goes missing.
    ids += [api.upload_model(bob, onnx_model, name="late")["model_id"]]
    seen = [m["model_id"] for m in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = api.client.get("/ai/models", params={"limit": 2, "cursor": cursor}, headers=alice["headers"]).json()
        seen += [m["model_id"] for m in page["items"]]
        cursor = page["next_cursor"]
    assert seen == ids
    mine = api.client.get("/ai/models", params={"mine": True, "limit": 100}, headers=alice["headers"]).json()
    assert [m["model_id"] for m in mine["items"]] == ids[1:5:2]
    assert all(m["owner"] == alice["address"] and m["format"] == "onnx" for m in mine["items"])
    error(api.client.get("/ai/models", params={"limit": 101}, headers=alice["headers"]), 422, "validation_error")
    error(api.client.get("/ai/models", params={"cursor": "garbage!"}, headers=alice["headers"]), 422,
          "invalid_cursor")
    one = api.client.get(f"/ai/models/{ids[0]}", headers=alice["headers"])
    assert one.json()["name"] == "m0"
    error(api.client.get("/ai/models/999", headers=alice["headers"]), 404, "model_not_found")
