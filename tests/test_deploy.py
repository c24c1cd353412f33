import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omnitensor.anvil import Anvil, dev_keys
from omnitensor.chain import Chain
from omnitensor.deploy import DeployParams, deploy, resolve_deployer
from omnitensor.errors import ConfigError, DeploymentNotFound
from omnitensor.keys import account_from_key, load_keystore, write_keystore
from omnitensor.manifest import Manifest
from omnitensor.paths import ROOT


def test_manifest_describes_the_live_deployment(deployed, tmp_path: Path) -> None:
    manifest = deployed.manifest
    assert manifest.chain_id == 31337
    assert manifest.compiler.startswith("0.8.30+commit")
    assert set(manifest.contracts) == {"OmniForwarder", "OmniToken", "Registry", "ComputeMarket"}
    assert manifest.is_live_on(deployed.chain)
    assert deployed.call(deployed.market.functions.token()) == manifest.token
    assert deployed.call(deployed.market.functions.registry()) == manifest.registry
    assert deployed.call(deployed.market.functions.isTrustedForwarder(manifest.forwarder)) is True
    moved = Manifest(**{**manifest.__dict__, "contracts": {**manifest.contracts, "ComputeMarket": manifest.token}})
    assert not moved.is_live_on(deployed.chain)
    with pytest.raises(DeploymentNotFound):
        moved.check_live(deployed.chain)


def test_deploy_twice_sends_nothing_the_second_time(tmp_path: Path) -> None:
    with Anvil() as node:
        chain = Chain(node.url)
        path = tmp_path / "m.json"
        key = account_from_key(dev_keys()[0])
        first, deployed = deploy(chain, key, DeployParams(), path)
        assert deployed
        block = chain.block_number()
        second, deployed_again = deploy(chain, key, DeployParams(), path)
        assert not deployed_again
        assert second == first
        assert chain.block_number() == block


def test_deploy_cli_with_encrypted_keystore(tmp_path: Path) -> None:
    keystore = write_keystore(tmp_path / "deployer.json", dev_keys()[3], "s3cret", scrypt_n=2**10)
    assert oct(keystore.stat().st_mode & 0o777) == "0o600"
    assert load_keystore(keystore, "s3cret").address == account_from_key(dev_keys()[3]).address
    with pytest.raises(ConfigError, match="wrong password"):
        load_keystore(keystore, "nope")
    with Anvil() as node:
        env = {**os.environ, "OMNITENSOR_KEYSTORE_PASSWORD": "s3cret"}
        out = subprocess.run(
            [sys.executable, "-m", "omnitensor.deploy", "--rpc", node.url, "--keystore", str(keystore),
             "--manifest", str(tmp_path / "m.json")],
            capture_output=True, text=True, env=env, cwd=ROOT, check=True,
        ).stdout
        assert out.startswith("deployed")
        manifest = json.loads((tmp_path / "m.json").read_text())
        assert manifest["deployer"] == account_from_key(dev_keys()[3]).address


def test_a_non_local_chain_needs_a_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMNITENSOR_DEPLOYER_KEY", raising=False)
    with Anvil(chain_id=8453) as node:
        with pytest.raises(ConfigError, match="not a local chain"):
            resolve_deployer(Chain(node.url), None)


def test_missing_manifest_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(DeploymentNotFound, match="deploy first"):
        Manifest.load(tmp_path / "none.json")


def test_market_constructor_rejects_zero_addresses_and_stake(deployed) -> None:
    from omnitensor.deploy import _creation_data
    from omnitensor.errors import ContractRevert

    m = deployed.manifest
    zero = "0x" + "00" * 20
    admin = deployed.addr("admin")
    signer = deployed.signers["admin"]
    cases = [
        ([zero, m.registry, m.forwarder, admin, admin, 1, 0, 0], "MarketZeroAddress"),
        ([m.token, m.registry, m.forwarder, admin, zero, 1, 0, 0], "MarketZeroAddress"),
        ([m.token, m.registry, m.forwarder, admin, admin, 0, 0, 0], "MarketZeroAmount"),
    ]
    for args, name in cases:
        with pytest.raises(ContractRevert) as info:
            signer.simulate(data=_creation_data("ComputeMarket", args))
        assert info.value.name == name
