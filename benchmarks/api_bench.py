"""HTTP API benchmark on a local automining anvil, the API in its own process and a real oracle node.
Prints, each against a baseline measured in the same run:

- `GET /account/balance` latency against a direct `eth_call` of the same value (target: median ≤ 2×);
- inference through HTTP with waiting: client end-to-end latency minus the node's own job latency (open
  receipt → settlement receipt), median and p99 (target: median ≤ 30 ms).

usage: .venv/bin/python -m benchmarks.api_bench [--reads N] [--jobs N] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from backend.process import ApiProcess
from backend.settings import ApiSettings
from omnitensor.anvil import Anvil, dev_keys, free_port
from omnitensor.chain import Chain, Signer
from omnitensor.deploy import DeployParams, deploy
from omnitensor.keys import account_from_key
from oracle import demo
from oracle.background import BackgroundNode
from oracle.settings import NodeSettings

OMNIT = 10**18
ADMIN = "bench-admin"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "p90": percentile(values, 90), "p99": percentile(values, 99),
            "n": len(values)}


def timed(fn: Any, n: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def node_settled_at(node: BackgroundNode, job_id: int) -> float:
    """When the node had its settlement receipt (the API may have seen the event a moment before the node
    finished its own bookkeeping)."""
    for _ in range(1000):
        for recorded, settled_at, _ in reversed(node.node.recent):
            if recorded == job_id:
                return settled_at
        time.sleep(0.001)
    raise TimeoutError(f"the node has no record of job {job_id}")


def account(client: httpx.Client, admin: Signer, token: str, deposit: int) -> dict[str, str]:
    created = client.post("/admin/accounts", json={}, headers={"Authorization": f"Bearer {ADMIN}"}).json()
    tokens = client.post("/auth/token", json={"grant_type": "api_key", "api_key": created["api_key"]}).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    if deposit:
        contract = admin.chain.contract("OmniToken", token)
        admin.send(contract.functions.transfer(created["account"]["address"], deposit))
        client.post("/account/deposit", json={"amount_wei": str(deposit)}, headers=headers).raise_for_status()
    return {"address": created["account"]["address"], **headers}


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident memory (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(reads: int, jobs: int) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_dir, Anvil() as anvil:
        tmp = Path(tmp_dir)
        chain = Chain(anvil.url)
        manifest, _ = deploy(chain, account_from_key(dev_keys()[0]), DeployParams(), tmp / "manifest.json")
        admin = Signer.from_key(chain, dev_keys()[0])
        settings = ApiSettings(rpc_url=anvil.url, manifest=tmp / "manifest.json",
                               database_url=f"sqlite:///{tmp / 'api.db'}", data_dir=tmp / "api",
                               blob_dir=tmp / "blobs", secret="bench-secret", admin_token=ADMIN,
                               relayer_private_key=dev_keys()[7], scrypt_n=2**14, requests_per_minute=10**6,
                               relays_per_minute=10**6)
        api = ApiProcess(settings, free_port(), tmp / "api.log").start()
        node: BackgroundNode | None = None
        try:
            with httpx.Client(base_url=api.url, timeout=60) as client:
                owner = account(client, admin, manifest.token, 0)
                user = account(client, admin, manifest.token, 1000 * OMNIT)
                model = demo.digits_onnx()
                uploaded = client.post("/ai/models/upload", content=model, headers={
                    "Authorization": owner["Authorization"], "Content-Type": "application/octet-stream"}, params={
                    "name": "digits", "format": "onnx", "price_wei": str(OMNIT // 50),
                    "sha256": hashlib.sha256(model).hexdigest()}).json()

                # ── balance: HTTP against direct eth_calls of the same values ──
                headers = {"Authorization": user["Authorization"]}
                http = timed(lambda: client.get("/account/balance", headers=headers).raise_for_status(), reads)
                wallet_call = chain.encoder("OmniToken", "balanceOf")(user["address"])
                deposit_call = chain.encoder("ComputeMarket", "balanceOf")(user["address"])
                one = timed(lambda: chain.rpc("eth_call", [{"to": manifest.token, "data": wallet_call}, "latest"]),
                            reads)
                # The same eth_call through the HTTP client the API's caller uses: what the API adds on the server.
                with httpx.Client() as rpc_client:
                    same_client = timed(lambda: rpc_client.post(anvil.url, json={
                        "jsonrpc": "2.0", "id": 1, "method": "eth_call",
                        "params": [{"to": manifest.token, "data": wallet_call}, "latest"]}).raise_for_status(),
                        reads)
                both = timed(lambda: chain.batch_rpc([
                    ("eth_call", [{"to": manifest.token, "data": wallet_call}, "latest"]),
                    ("eth_call", [{"to": manifest.market, "data": deposit_call}, "latest"])]), reads)
                report["balance_ms"] = {"http": summary(http), "eth_call": summary(one),
                                        "eth_call_same_client": summary(same_client),
                                        "eth_call_batch_of_both": summary(both),
                                        "ratio_to_eth_call": statistics.median(http) / statistics.median(one),
                                        "ratio_to_same_client": statistics.median(http)
                                        / statistics.median(same_client),
                                        "ratio_to_batch": statistics.median(http) / statistics.median(both)}

                # ── inference with waiting: end-to-end minus the node's own latency ──
                admin.send(admin.chain.contract("OmniToken", manifest.token).functions.transfer(
                    account_from_key(dev_keys()[1]).address, 100 * OMNIT))
                node = BackgroundNode(NodeSettings(
                    rpc_url=anvil.url, private_key=dev_keys()[1], manifest=tmp / "manifest.json",
                    blob_dir=tmp / "blobs", state_db=tmp / "node.db", metrics_port=0, poll_interval=0.005,
                    device="cpu"))
                x = demo.digits().x_test[:1]
                body = {"inputs": {"input": {"dtype": "float32", "shape": [1, 64], "data": x.ravel().tolist()}}}
                url = f"/ai/models/{uploaded['model_id']}/inference"
                rows = []
                for i in range(jobs + 5):
                    start = time.time()
                    response = client.post(url, json=body, headers=headers)
                    end = time.time()
                    job = response.json()
                    assert job["status"] == "settled", job
                    if i < 5:
                        continue  # warm-up
                    settled_at = node_settled_at(node, int(job["job_id"]))
                    node_ms = (settled_at - job["timings"]["opened_at"]) * 1000
                    rows.append({"e2e": (end - start) * 1000, "node": node_ms, "overhead": (end - start) * 1000
                                 - node_ms, "before_open": (job["timings"]["opened_at"] - start) * 1000,
                                 "after_settle": (end - settled_at) * 1000})
                report["inference_ms"] = {k: summary([r[k] for r in rows]) for k in rows[0]}
                report["api_peak_rss_mib"] = peak_rss_mib(api.proc.pid)  # type: ignore[union-attr]
        finally:
            if node is not None:
                node.stop()
            api.stop()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reads", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=150)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = run(args.reads, args.jobs)
    b, i = report["balance_ms"], report["inference_ms"]
    print(f"GET /account/balance (httpx client): median {b['http']['median']:.2f} ms (p99 {b['http']['p99']:.2f}); "
          f"direct eth_call through the same httpx client {b['eth_call_same_client']['median']:.2f} ms: ratio "
          f"{b['ratio_to_same_client']:.2f}x (target ≤ 2x); through a kept-alive http.client connection "
          f"{b['eth_call']['median']:.2f} ms (ratio {b['ratio_to_eth_call']:.2f}x), both values batched "
          f"{b['eth_call_batch_of_both']['median']:.2f} ms (ratio {b['ratio_to_batch']:.2f}x)")
    print(f"inference, waiting: end-to-end median {i['e2e']['median']:.1f} ms; node's own latency (open receipt → "
          f"settlement receipt) median {i['node']['median']:.1f} ms; API overhead median {i['overhead']['median']:.1f}"
          f" ms, p99 {i['overhead']['p99']:.1f} ms (target median ≤ 30 ms): before the job was open "
          f"{i['before_open']['median']:.1f} ms, after its settlement {i['after_settle']['median']:.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
