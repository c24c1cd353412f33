"""Terminal commands that talk to an OmniTensor API: create accounts, upload models, run inference, status.
The API URL and key come from flags, then OMNITENSOR_API_URL / OMNITENSOR_API_KEY, then the local network
that `omnitensor up` runs (.omnitensor/local.json)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from omnitensor.chain import Chain
from omnitensor.errors import ConfigError
from omnitensor.paths import DEFAULT_STATE_DIR

LOCAL = DEFAULT_STATE_DIR / "local.json"


def _local() -> dict[str, Any]:
    return json.loads(LOCAL.read_text()) if LOCAL.exists() else {}


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", help="API URL (default: $OMNITENSOR_API_URL, or the local network's)")
    parser.add_argument("--api-key", help="API key (default: $OMNITENSOR_API_KEY, or the local demo account's)")


class ApiClient:
    def __init__(self, args: argparse.Namespace) -> None:
        local = _local()
        self.url = args.api or os.environ.get("OMNITENSOR_API_URL") or local.get("api_url") or "http://127.0.0.1:8000"
        self.key = getattr(args, "api_key", None) or os.environ.get("OMNITENSOR_API_KEY") or local.get("demo_api_key")
        self.http = httpx.Client(base_url=self.url, timeout=300)
        self._headers: dict[str, str] | None = None

    def headers(self) -> dict[str, str]:
        if self._headers is None:
            if not self.key:
                raise ConfigError("no API key: pass --api-key, set OMNITENSOR_API_KEY, or run `omnitensor up`")
            token = self.check(self.http.post("/auth/token", json={"grant_type": "api_key", "api_key": self.key}))
            self._headers = {"Authorization": f"Bearer {token['access_token']}"}
        return self._headers

    @staticmethod
    def check(response: httpx.Response) -> Any:
        if response.is_success:
            return response.json()
        try:
            error = response.json()["error"]
            message = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        raise ConfigError(f"the API answered {response.status_code}: {message}")


def create_account(args: argparse.Namespace) -> None:
    client = ApiClient(args)
    token = args.admin_token or os.environ.get("OMNITENSOR_API_ADMIN_TOKEN")
    if token is None and _local().get("admin_token_file"):
        token = Path(_local()["admin_token_file"]).read_text().strip()
    if token is None:
        raise ConfigError("no admin token: pass --admin-token or set OMNITENSOR_API_ADMIN_TOKEN")
    body = client.check(client.http.post("/admin/accounts", json={"label": args.label},
                                         headers={"Authorization": f"Bearer {token}"}))
    print(json.dumps(body, indent=2))


def upload_model(args: argparse.Namespace) -> None:
    client = ApiClient(args)
    data = Path(args.file).read_bytes()
    fmt = args.format or ("torchscript" if args.file.endswith((".pt", ".pth")) else "onnx")
    session = client.check(client.http.post("/ai/models/upload", headers=client.headers(), json={
        "name": args.name or Path(args.file).stem[:64], "format": fmt, "price_wei": str(args.price_wei),
        "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}))
    size, count = session["chunk_size"], session["chunk_count"]
    for index in range(count):
        client.check(client.http.put(f"/uploads/{session['upload_id']}/chunks/{index}",
                                     content=data[index * size:(index + 1) * size],
                                     headers={**client.headers(), "Content-Type": "application/octet-stream"}))
        done = min((index + 1) * size, len(data))
        bar = "#" * (30 * done // len(data))
        print(f"\r[{bar:<30}] {done:,}/{len(data):,} bytes", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    result = client.check(client.http.post(f"/uploads/{session['upload_id']}/complete", headers=client.headers(),
                                           json={"sha256": session["sha256"]}))
    print(json.dumps(result, indent=2))


def infer(args: argparse.Namespace) -> None:
    client = ApiClient(args)
    raw = Path(args.input_file).read_bytes()
    url = f"/ai/models/{args.model_id}/inference"
    params = {"timeout": args.timeout}
    if args.input_file.endswith(".safetensors"):
        response = client.http.post(url, content=raw, params=params,
                                    headers={**client.headers(), "Content-Type": "application/octet-stream"})
    else:
        response = client.http.post(url, content=raw, params=params,
                                    headers={**client.headers(), "Content-Type": "application/json"})
    print(json.dumps(client.check(response), indent=2))


def status(args: argparse.Namespace) -> None:
    client = ApiClient(args)
    health = client.check(client.http.get("/health"))
    print(f"API {client.url}: {health['status']}; chain {health['chain_id']} at block {health['block']}")
    rpc = args.rpc or _local().get("rpc_url")
    if rpc:
        chain = Chain(rpc)
        market = health["contracts"]["ComputeMarket"]
        (nodes,) = chain.views([("ComputeMarket", market, "getActiveNodes", (0, 200))])
        infos = chain.views([("ComputeMarket", market, "getNode", (n,)) for n in nodes]) if nodes else []
        print(f"active nodes: {len(nodes)}")
        for node, info in zip(nodes, infos, strict=True):
            print(f"  {node}  stake {info[0] / 1e18:,.2f} OMNIT, {info[1] / 1e18:g} OMNIT/job, "
                  f"{info[2] / 1e18:g} OMNIT/GPU-second")
    if client.key:
        jobs = client.check(client.http.get("/ai/jobs", params={"limit": 100}, headers=client.headers()))["items"]
        pending = [j for j in jobs if j["status"] == "pending"]
        allocations = client.check(client.http.get("/compute/allocations", headers=client.headers()))["items"]
        open_allocations = [a for a in allocations if not a["closed"]]
        print(f"your jobs: {len(jobs)} recent, {len(pending)} open; allocations: {len(open_allocations)} open")
        for a in open_allocations:
            print(f"  allocation {a['allocation_id']} on {a['node']}: {a['used_seconds']}/{a['reserved_seconds']} "
                  f"GPU-seconds used, expires at {a['expires_at']}")
