"""`omnitensor up`: the whole network on one machine with nothing to configure — anvil (state on disk), the
contracts, one oracle node, the API, a demo account with OMNIT in its deposit and the digits model
registered. Everything lives in .omnitensor/, so running it again resumes the same chain, accounts, models
and jobs. A node or API that exits is restarted (with backoff); the chain exiting stops everything."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

from backend.process import ApiProcess
from backend.settings import ApiSettings
from omnitensor.anvil import Anvil, dev_keys, port_in_use
from omnitensor.chain import Chain, Signer
from omnitensor.deploy import DeployParams, deploy
from omnitensor.errors import ConfigError, OmniTensorError
from omnitensor.keys import account_from_key
from omnitensor.manifest import Manifest
from omnitensor.process import ServiceProcess, Supervisor, exit_status
from oracle.process import NodeProcess
from oracle.settings import NodeSettings

OMNIT = 10**18
DEV_FUNDED = range(1, 5)  # anvil accounts 1–4: enough OMNIT to stake a node or deposit as a requester
DEV_GRANT = 10_000 * OMNIT
NODE_KEY = 1  # the local node's development key
RELAYER_KEY = 9  # the API's relayer (anvil gives every development account 10,000 ETH for gas)
DEMO_DEPOSIT = 1_000 * OMNIT
DEMO_PRICE = OMNIT // 50


def fund_dev_accounts(chain: Chain, manifest: Manifest) -> None:
    """Gives the development accounts OMNIT from the deployer's supply, so a node can stake at once."""
    deployer = Signer.from_key(chain, dev_keys()[0])
    token = chain.contract("OmniToken", manifest.token)
    for i in DEV_FUNDED:
        deployer.send(token.functions.transfer(account_from_key(dev_keys()[i]).address, DEV_GRANT))


def _secret(path: Path) -> str:
    """A random secret kept in the state folder (0600), the same on every run."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def _check_ports(ports: dict[str, tuple[int, str]]) -> None:
    for what, (port, flag) in ports.items():
        if port_in_use(port):
            raise ConfigError(f"port {port} ({what}) is in use: stop what listens there, or pass {flag} N")


class LocalNetwork:
    def __init__(self, state_dir: Path, rpc_port: int, api_port: int, metrics_port: int) -> None:
        self.state = state_dir
        self.anvil = Anvil(rpc_port, state_file=state_dir / "chain-state.json", log_file=state_dir / "anvil.log")
        self.api_port = api_port
        self.metrics_port = metrics_port
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.services: dict[str, ServiceProcess] = {}

    def start(self) -> dict[str, Any]:
        _check_ports({"chain RPC": (self.anvil.port, "--port"), "API": (self.api_port, "--api-port"),
                      "node metrics": (self.metrics_port, "--metrics-port")})
        self.anvil.start()
        chain = Chain(self.anvil.url)
        manifest_path = self.state / "deployments" / f"{chain.chain_id}.json"
        manifest, deployed = deploy(chain, account_from_key(dev_keys()[0]), DeployParams(), manifest_path)
        if deployed:
            fund_dev_accounts(chain, manifest)
        # A local network's models are uploaded to this host and named by file:// or loopback URLs.
        self._run("node", NodeProcess(NodeSettings(
            rpc_url=self.anvil.url, private_key=dev_keys()[NODE_KEY], manifest=manifest_path,
            blob_dir=self.state / "blobs", state_db=self.state / "node.db", metrics_port=self.metrics_port,
            fetch_allow_file=True, fetch_allow_private=True, public_url=f"http://127.0.0.1:{self.metrics_port}",
        ), self.state / "node.log"))
        admin_token = _secret(self.state / "admin-token")
        self._run("api", ApiProcess(ApiSettings(
            rpc_url=self.anvil.url, manifest=manifest_path, database_url=f"sqlite:///{self.state / 'api.db'}",
            data_dir=self.state / "api", blob_dir=self.state / "blobs", secret=_secret(self.state / "api-secret"),
            admin_token=admin_token, relayer_private_key=dev_keys()[RELAYER_KEY],
            siwe_domain=f"127.0.0.1:{self.api_port}", fetch_allow_file=True, fetch_allow_private=True,
        ), self.api_port, self.state / "api.log"))
        demo = self._demo(chain, manifest, admin_token)
        local = {"rpc_url": self.anvil.url, "api_url": self.api_url, "chain_id": chain.chain_id,
                 "manifest": str(manifest_path), "admin_token_file": str(self.state / "admin-token"), **demo}
        (self.state / "local.json").write_text(json.dumps(local, indent=2) + "\n")
        return {**local, "deployed": deployed}

    def _run(self, key: str, service: ServiceProcess) -> None:
        self.services[key] = service
        service.start()
        self._write_pids()

    def _write_pids(self) -> None:
        """pids.json: which processes are ours right now (for a user's `kill`, and the supervision test)."""
        pids = {"up": os.getpid(), "anvil": self.anvil.process.pid if self.anvil.process else None,
                **{key: service.pid for key, service in self.services.items()}}
        path = self.state / "pids.json"
        path.with_suffix(".tmp").write_text(json.dumps(pids, indent=2) + "\n")
        path.with_suffix(".tmp").replace(path)  # whoever reads it never sees half a file

    def _demo(self, chain: Chain, manifest: Manifest, admin_token: str) -> dict[str, Any]:
        """The demo account and model: made once, then read back from demo.json."""
        path = self.state / "demo.json"
        if path.exists():
            return json.loads(path.read_text())
        from oracle import demo

        with httpx.Client(base_url=self.api_url, timeout=120) as client:
            created = client.post("/admin/accounts", json={"label": "demo"},
                                  headers={"Authorization": f"Bearer {admin_token}"})
            created.raise_for_status()
            account = created.json()
            address, api_key = account["account"]["address"], account["api_key"]
            token = client.post("/auth/token", json={"grant_type": "api_key", "api_key": api_key}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            deployer = Signer.from_key(chain, dev_keys()[0])
            deployer.send(chain.contract("OmniToken", manifest.token).functions.transfer(address, DEMO_DEPOSIT))
            client.post("/account/deposit", json={"amount_wei": str(DEMO_DEPOSIT)},
                        headers=headers).raise_for_status()
            data = demo.digits()
            model = demo.digits_onnx(data)
            uploaded = client.post("/ai/models/upload", content=model, params={
                "name": "digits-mlp", "format": "onnx", "price_wei": str(DEMO_PRICE)},
                headers={**headers, "Content-Type": "application/octet-stream"})
            uploaded.raise_for_status()
        sample = data.x_test[:1]
        (self.state / "demo-input.json").write_text(json.dumps({"inputs": {"input": {
            "dtype": "float32", "shape": [1, 64], "data": [round(float(v), 4) for v in sample.ravel()]}}}))
        result = {"demo_account_id": account["account"]["id"], "demo_address": address, "demo_api_key": api_key,
                  "demo_model_id": uploaded.json()["model_id"], "demo_input": str(self.state / "demo-input.json"),
                  "demo_expected_label": int(data.y_test[0])}
        path.touch(mode=0o600)
        path.write_text(json.dumps(result, indent=2) + "\n")
        return result

    def supervise(self, stop: threading.Event) -> str | None:
        """Restarts the node and the API when they exit. Returns None once `stop` is set, or what to tell the
        user when the chain exited: nothing can be restarted around a lost chain."""
        supervisor = Supervisor(self.services.values(), stop)
        while not stop.is_set():
            chain = self.anvil.process
            if chain is not None and chain.poll() is not None:
                return (f"the chain (anvil) exited ({exit_status(chain.returncode)}; log {self.anvil.log_file}); "
                        "the contracts, the node and the API all rest on it, so everything stops")
            if supervisor.poll():
                self._write_pids()
            stop.wait(0.5)
        return None

    def stop(self) -> None:
        for service in reversed(self.services.values()):
            service.stop()
        self.anvil.stop()
        (self.state / "pids.json").unlink(missing_ok=True)


def curl_example(info: dict[str, Any]) -> str:
    api = info["api_url"]
    return (f"TOKEN=$(curl -s -X POST {api}/auth/token -H 'Content-Type: application/json' \\\n"
            f"  -d '{{\"grant_type\": \"api_key\", \"api_key\": \"{info['demo_api_key']}\"}}' \\\n"
            "  | python3 -c 'import json, sys; print(json.load(sys.stdin)[\"access_token\"])')\n"
            f"curl -s -X POST {api}/ai/models/{info['demo_model_id']}/inference -H \"Authorization: Bearer $TOKEN\" "
            f"\\\n  -H 'Content-Type: application/json' -d @{info['demo_input']}")


def up(state_dir: Path, rpc_port: int, api_port: int, metrics_port: int) -> int:
    network = LocalNetwork(state_dir, rpc_port, api_port, metrics_port)
    stop = threading.Event()
    # Set explicitly: a shell starting us in the background would otherwise leave SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        info = network.start()
    except (OmniTensorError, httpx.HTTPError) as exc:
        network.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"chain:     {info['rpc_url']} (chain id {info['chain_id']}; "
          f"{'contracts deployed' if info['deployed'] else 'resumed, contracts found from the earlier run'})")
    print(f"manifest:  {info['manifest']}")
    print(f"node:      running (log {state_dir / 'node.log'}, health http://127.0.0.1:{metrics_port}/health)")
    print(f"API:       {info['api_url']}   docs: {info['api_url']}/docs")
    print(f"demo:      account {info['demo_account_id']} ({info['demo_address']}), "
          f"{DEMO_DEPOSIT // OMNIT:,} OMNIT deposited; model {info['demo_model_id']} (digits-mlp, ONNX)")
    print(f"API key:   {info['demo_api_key']}")
    print("run an inference:\n" + curl_example(info))
    print("running; press Ctrl-C to stop", flush=True)
    fatal = network.supervise(stop)
    if fatal:
        print(f"error: {fatal}", flush=True)
    network.stop()
    print(f"stopped; {'see the logs in' if fatal else 'state saved in'} {state_dir}")
    return 1 if fatal else 0
