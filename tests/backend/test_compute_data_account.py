"""Allocations, datasets, balances and transfers through the API."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fastapi.testclient import TestClient

from backend.app import create_app
from tests.backend.conftest import Api, api_settings, error
from tests.support import OMNIT, Net


def test_allocate_on_the_cheapest_node_watch_and_close(api: Api) -> None:
    api.net.register_node("node1", per_second=OMNIT // 1000)
    api.net.register_node("node2", per_second=OMNIT // 2000)  # cheaper
    user = api.account(deposit=OMNIT)
    r = api.client.post("/compute/allocate", json={"gpu_seconds": 600, "duration_s": 3600}, headers=user["headers"])
    assert r.status_code == 201, r.text
    allocation = r.json()
    assert allocation["node"] == api.net.addr("node2")
    assert allocation["reserved_seconds"] == 600
    assert allocation["remaining_seconds"] == 600
    assert allocation["escrow_wei"] == str(600 * OMNIT // 2000)
    assert allocation["cost_so_far_wei"] == "0"
    assert not allocation["closed"]
    assert api.client.get("/account/balance", headers=user["headers"]).json()["locked_wei"] == str(600 * OMNIT // 2000)
    # The node reports 10 s of use; the resource shows it.
    api.net.send("node2", api.net.market.functions.reportUsage(allocation["allocation_id"], 10))
    seen = api.client.get(f"/compute/allocations/{allocation['allocation_id']}", headers=user["headers"]).json()
    assert (seen["used_seconds"], seen["remaining_seconds"]) == (10, 590)
    assert seen["cost_so_far_wei"] == str(10 * OMNIT // 2000)
    # Another account can neither see nor close it.
    other = api.account()
    error(api.client.get(f"/compute/allocations/{allocation['allocation_id']}", headers=other["headers"]), 404,
          "allocation_not_found")
    error(api.client.post(f"/compute/allocations/{allocation['allocation_id']}/close", headers=other["headers"]),
          404, "allocation_not_found")
    closed = api.client.post(f"/compute/allocations/{allocation['allocation_id']}/close", headers=user["headers"])
    assert closed.status_code == 200, closed.text
    assert closed.json()["closed"]
    assert closed.json()["close_tx"].startswith("0x")
    balance = api.client.get("/account/balance", headers=user["headers"]).json()
    assert (balance["available_wei"], balance["locked_wei"]) == (str(OMNIT - 10 * OMNIT // 2000), "0")
    error(api.client.post(f"/compute/allocations/{allocation['allocation_id']}/close", headers=user["headers"]),
          409, "allocation_closed")
    listed = api.client.get("/compute/allocations", headers=user["headers"]).json()["items"]
    assert [a["allocation_id"] for a in listed] == [allocation["allocation_id"]]


def test_allocation_errors(api: Api) -> None:
    user = api.account(deposit=OMNIT // 1000)
    error(api.client.post("/compute/allocate", json={"gpu_seconds": 10}, headers=user["headers"]), 503,
          "no_node_available")
    api.net.register_node("node1", per_second=OMNIT // 1000)
    error(api.client.post("/compute/allocate", json={"gpu_seconds": 10, "max_price_per_second_wei": "1"},
                          headers=user["headers"]), 409, "no_node_within_price")
    error(api.client.post("/compute/allocate", json={"gpu_seconds": 10, "node": api.net.addr("node2")},
                          headers=user["headers"]), 422, "node_not_active")
    error(api.client.post("/compute/allocate", json={"gpu_seconds": 10_000}, headers=user["headers"]), 402,
          "insufficient_deposit")
    error(api.client.post("/compute/allocate", json={"gpu_seconds": 0}, headers=user["headers"]), 422,
          "validation_error")
    error(api.client.get("/compute/allocations/12345", headers=user["headers"]), 404, "allocation_not_found")


def test_dataset_upload_and_metadata(api: Api) -> None:
    user = api.account()
    data = json.dumps([{"x": i, "y": i * i} for i in range(500)]).encode()
    digest = hashlib.sha256(data).hexdigest()
    r = api.client.post("/data/upload", headers=user["headers"], json={
        "name": "squares", "size": len(data), "sha256": digest, "metadata": {"license": "CC0", "rows": 500}})
    assert r.status_code == 201, r.text
    upload = r.json()
    assert upload["kind"] == "dataset"
    put = api.client.put(f"/uploads/{upload['upload_id']}/chunks/0", content=data,
                         headers={**user["headers"], "Content-Type": "application/octet-stream"})
    assert put.status_code == 200, put.text
    done = api.client.post(f"/uploads/{upload['upload_id']}/complete", json={"sha256": digest},
                           headers=user["headers"])
    assert done.status_code == 201, done.text
    dataset_id = done.json()["dataset_id"]
    meta = api.client.get(f"/data/{dataset_id}/metadata", headers=user["headers"]).json()
    assert meta["owner"] == user["address"]
    assert meta["digest"] == "0x" + digest
    assert meta["size_bytes"] == len(data)
    assert meta["name"] == "squares"
    assert meta["metadata"] == {"name": "squares", "license": "CC0", "rows": 500}
    assert meta["tx_hash"] == done.json()["tx_hash"]
    assert meta["block"] == done.json()["block"]
    # Readable by other accounts (datasets are public on-chain); unknown ids are 404.
    other = api.account()
    assert api.client.get(f"/data/{dataset_id}/metadata", headers=other["headers"]).json()["digest"] == meta["digest"]
    error(api.client.get("/data/999/metadata", headers=user["headers"]), 404, "dataset_not_found")
    # One-request upload.
    small = b"a,b\n1,2\n"
    r = api.client.post("/data/upload", content=small, params={"name": "tiny", "sha256": hashlib.sha256(small)
                                                                .hexdigest()},
                        headers={**user["headers"], "Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert r.json()["dataset_id"] == dataset_id + 1


def test_balance_transfer_deposit_withdraw(api: Api) -> None:
    alice = api.account(wallet=10 * OMNIT)
    bob = api.account()
    r = api.client.post("/account/transfer", json={"to": bob["id"], "amount_wei": str(3 * OMNIT)},
                        headers=alice["headers"])
    assert r.status_code == 200, r.text
    assert r.json()["balance"]["wallet_wei"] == str(7 * OMNIT)
    assert api.net.call(api.net.token.functions.balanceOf(bob["address"])) == 3 * OMNIT
    outsider = api.net.addr("carol")
    api.client.post("/account/transfer", json={"to": outsider, "amount_wei": str(OMNIT)}, headers=alice["headers"])
    assert api.net.call(api.net.token.functions.balanceOf(outsider)) == OMNIT
    # Deposit (one permit-signed transaction) and withdraw.
    r = api.client.post("/account/deposit", json={"amount_wei": str(4 * OMNIT)}, headers=alice["headers"])
    assert r.json()["balance"] == {"address": alice["address"], "wallet_wei": str(2 * OMNIT),
                                   "available_wei": str(4 * OMNIT), "locked_wei": "0"}
    r = api.client.post("/account/withdraw", json={"amount_wei": str(OMNIT)}, headers=alice["headers"])
    assert r.json()["balance"]["available_wei"] == str(3 * OMNIT)
    # The custodial account never held ETH: the relayer paid every gas.
    assert api.net.chain.eth_balance(alice["address"]) == 0
    body = error(api.client.post("/account/transfer", json={"to": outsider, "amount_wei": str(100 * OMNIT)},
                                 headers=alice["headers"]), 402, "insufficient_balance")
    assert body["details"]["revert"]["error"] == "ERC20InsufficientBalance"
    error(api.client.post("/account/withdraw", json={"amount_wei": str(100 * OMNIT)}, headers=alice["headers"]),
          402, "insufficient_deposit")
    error(api.client.post("/account/transfer", json={"to": "acct_nobody", "amount_wei": "1"},
                          headers=alice["headers"]), 404, "account_not_found")
    error(api.client.post("/account/transfer", json={"to": "bob", "amount_wei": "1"}, headers=alice["headers"]), 422,
          "invalid_recipient")
    error(api.client.post("/account/deposit", json={"amount_wei": "-1"}, headers=alice["headers"]), 422,
          "validation_error")


def test_idempotent_transfer_sends_one_transaction(api: Api) -> None:
    alice = api.account(wallet=10 * OMNIT)
    headers = {**alice["headers"], "Idempotency-Key": "pay-bob-1"}
    body = {"to": api.net.addr("bob"), "amount_wei": str(OMNIT)}
    first = api.client.post("/account/transfer", json=body, headers=headers)
    second = api.client.post("/account/transfer", json=body, headers=headers)
    assert first.json()["tx_hash"] == second.json()["tx_hash"]
    assert second.headers["idempotent-replayed"] == "true"
    assert api.net.call(api.net.token.functions.balanceOf(api.net.addr("bob"))) == OMNIT


def test_relaying_is_capped_per_account(net: Net, tmp_path: Path) -> None:
    settings = api_settings(net, tmp_path, relays_per_minute=3, relays_total=1000)
    with TestClient(create_app(settings)) as client:
        api = Api(net, client, settings)
        alice = api.account(wallet=10 * OMNIT)
        body = {"to": net.addr("bob"), "amount_wei": "1"}
        for _ in range(3):
            assert client.post("/account/transfer", json=body, headers=alice["headers"]).status_code == 200
        r = client.post("/account/transfer", json=body, headers=alice["headers"])
        error(r, 429, "relay_rate_limited")
        assert int(r.headers["retry-after"]) > 0
        # Another account has its own allowance.
        bob = api.account(wallet=OMNIT)
        assert client.post("/account/transfer", json=body, headers=bob["headers"]).status_code == 200
    settings = api_settings(net, tmp_path, relays_per_minute=100, relays_total=3)  # same database: 3 used already
    with TestClient(create_app(settings)) as client:
        token = Api(net, client, settings).token(alice["api_key"])["access_token"]
        error(client.post("/account/transfer", json=body, headers={"Authorization": f"Bearer {token}"}), 429,
              "relay_quota_exhausted")


def test_requests_per_minute_are_limited(net: Net, tmp_path: Path) -> None:
    settings = api_settings(net, tmp_path, requests_per_minute=5)
    with TestClient(create_app(settings)) as client:
        api = Api(net, client, settings)
        alice = api.account()  # uses the IP's allowance (1 of 5) for its sign-in
        codes = [client.get("/account/balance", headers=alice["headers"]).status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
