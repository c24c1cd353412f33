"""Deploys the OmniTensor contracts to any RPC URL and writes the deployment manifest.

Running it again against a chain that already holds the manifest's deployment sends nothing."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from omnitensor.anvil import LOCAL_CHAIN_ID, dev_keys
from omnitensor.chain import Chain, Signer
from omnitensor.compiler import compiler_version, load_artifact
from omnitensor.errors import ConfigError, OmniTensorError
from omnitensor.keys import account_from_key, load_keystore
from omnitensor.manifest import Manifest, default_manifest_path

OMNIT = 10**18

@dataclass(frozen=True)
class DeployParams:
    supply: int = 1_000_000_000 * OMNIT
    min_stake: int = 100 * OMNIT
    unbonding_delay: int = 7 * 24 * 3600
    assign_window: int = 30
    admin: str | None = None  # default: the deployer
    slash_recipient: str | None = None  # default: the deployer
    initial_holder: str | None = None  # receives the whole supply; default: the deployer

def _creation_data(name: str, args: list[Any]) -> str:
    artifact = load_artifact(name)
    ctor = next((item for item in artifact["abi"] if item["type"] == "constructor"), None)
    types = [i["type"] for i in ctor["inputs"]] if ctor else []
    return artifact["bytecode"] + abi_encode(types, args).hex()

def _deploy_one(signer: Signer, name: str, args: list[Any]) -> tuple[str, int]:
    receipt = signer.send(data=_creation_data(name, args))
    return to_checksum_address(receipt["contractAddress"]), int(receipt["blockNumber"], 16)

def deploy(chain: Chain, deployer: LocalAccount, params: DeployParams, manifest_path: Path) -> tuple[Manifest, bool]:
    """Returns the manifest and whether anything was deployed."""
    if manifest_path.exists():
        existing = Manifest.load(manifest_path)
        if existing.is_live_on(chain):
            return existing, False

    signer = Signer(chain, deployer)
    me = deployer.address
    forwarder, first_block = _deploy_one(signer, "OmniForwarder", [])
    token, _ = _deploy_one(signer, "OmniToken", [params.initial_holder or me, params.supply, forwarder])
    registry, _ = _deploy_one(signer, "Registry", [forwarder])
    market, _ = _deploy_one(signer, "ComputeMarket", [
        token, registry, forwarder, params.admin or me, params.slash_recipient or me,
        params.min_stake, params.unbonding_delay, params.assign_window,
    ])
    contracts = {"OmniForwarder": forwarder, "OmniToken": token, "Registry": registry, "ComputeMarket": market}
    manifest = Manifest(
        chain_id=chain.chain_id,
        deployment_block=first_block,
        compiler=compiler_version(),
        deployer=me,
        contracts=contracts,
        code_hashes={n: "0x" + keccak(chain.code_at(a)).hex() for n, a in contracts.items()},
        params={k: v for k, v in asdict(params).items() if v is not None},
    )
    manifest.save(manifest_path)
    return manifest, True

def resolve_deployer(chain: Chain, keystore: Path | None) -> LocalAccount:
    """The deployer key: a keystore (password from OMNITENSOR_KEYSTORE_PASSWORD or a prompt), else
    OMNITENSOR_DEPLOYER_KEY, else — on a local anvil chain only — anvil's first public development key."""
    if keystore is not None:
        password = os.environ.get("OMNITENSOR_KEYSTORE_PASSWORD")
        if password is None:
            if not sys.stdin.isatty():
                raise ConfigError("set OMNITENSOR_KEYSTORE_PASSWORD to decrypt the keystore without a terminal")
            password = getpass.getpass(f"Password for {keystore}: ")
        return load_keystore(keystore, password)
    if key := os.environ.get("OMNITENSOR_DEPLOYER_KEY"):
        return account_from_key(key)
    if chain.chain_id == LOCAL_CHAIN_ID:
        return account_from_key(dev_keys()[0])
    raise ConfigError(
        f"chain {chain.chain_id} is not a local chain: pass --keystore FILE (or set OMNITENSOR_DEPLOYER_KEY)"
    )

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Deploy the OmniTensor contracts and write the deployment manifest.",
        epilog="example: omnitensor-deploy --rpc https://l2.example/rpc --keystore deployer.json",
    )
    parser.add_argument("--rpc", default="http://127.0.0.1:8545", help="JSON-RPC URL of the chain")
    parser.add_argument("--keystore", type=Path, help="encrypted deployer key (Web3 Secret Storage JSON)")
    parser.add_argument("--manifest", type=Path, help="where to write the manifest (default: per chain id)")
    parser.add_argument("--min-stake", type=int, default=DeployParams.min_stake, help="minimum node stake, wei")
    parser.add_argument("--unbonding-delay", type=int, default=DeployParams.unbonding_delay, help="seconds")
    parser.add_argument("--assign-window", type=int, default=DeployParams.assign_window, help="seconds")
    args = parser.parse_args(argv)
    try:
        chain = Chain(args.rpc)
        deployer = resolve_deployer(chain, args.keystore)
        path = args.manifest or default_manifest_path(chain.chain_id)
        params = DeployParams(min_stake=args.min_stake, unbonding_delay=args.unbonding_delay,
                              assign_window=args.assign_window)
        manifest, deployed = deploy(chain, deployer, params, path)
    except OmniTensorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(("deployed" if deployed else "already deployed, nothing sent") + f"; manifest: {path}")
    print(Path(path).read_text(), end="")
    return 0

if __name__ == "__main__":
    sys.exit(main())

