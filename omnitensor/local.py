"""`scripts/up.sh`: a local OmniTensor chain with nothing to configure. anvil keeps its state in
.omnitensor/chain-state.json, so stopping and starting again resumes the same chain and deployment."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from omnitensor.anvil import Anvil, dev_keys, port_in_use
from omnitensor.chain import Chain, Signer
from omnitensor.deploy import DeployParams, deploy
from omnitensor.errors import OmniTensorError
from omnitensor.keys import account_from_key
from omnitensor.manifest import Manifest
from omnitensor.paths import DEFAULT_STATE_DIR

DEV_FUNDED = range(1, 5)  # anvil accounts 1–4: enough OMNIT to stake a node or deposit as a requester
DEV_GRANT = 10_000 * 10**18


def fund_dev_accounts(chain: Chain, manifest: Manifest) -> None:
    """Gives the local development accounts OMNIT from the deployer's supply, so that a node can stake
    (`omnitensor-node` with one of their keys) without an extra step."""
    deployer = Signer.from_key(chain, dev_keys()[0])
    token = chain.contract("OmniToken", manifest.token)
    for i in DEV_FUNDED:
        deployer.send(token.functions.transfer(account_from_key(dev_keys()[i]).address, DEV_GRANT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a local OmniTensor chain with the contracts deployed.")
    parser.add_argument("--port", type=int, default=8545, help="anvil's JSON-RPC port (default 8545)")
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="where the chain state is kept")
    args = parser.parse_args(argv)
    state_dir = Path(args.state_dir)
    if port_in_use(args.port):
        print(f"error: port {args.port} is in use; stop what listens there or pass --port N", file=sys.stderr)
        return 1
    anvil = Anvil(args.port, state_file=state_dir / "chain-state.json", log_file=state_dir / "anvil.log")
    try:
        anvil.start()
        chain = Chain(anvil.url)
        path = state_dir / "deployments" / f"{chain.chain_id}.json"
        manifest, deployed = deploy(chain, account_from_key(dev_keys()[0]), DeployParams(), path)
        if deployed:
            fund_dev_accounts(chain, manifest)
    except OmniTensorError as exc:
        anvil.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"chain:    {anvil.url} (chain id {chain.chain_id}, state in {anvil.state_file})")
    print(f"contracts {'deployed' if deployed else 'found from the earlier run'}; manifest: {path}")
    if deployed:
        print(f"anvil accounts {DEV_FUNDED.start}–{DEV_FUNDED.stop - 1} got {DEV_GRANT // 10**18:,} OMNIT each")
    print(path.read_text(), end="")
    print("running; press Ctrl-C to stop", flush=True)
    stop = threading.Event()
    # Set explicitly: a shell starting us in the background would otherwise leave SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set() and anvil.process is not None and anvil.process.poll() is None:
        stop.wait(0.5)
    anvil.stop()
    print("stopped; chain state saved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
