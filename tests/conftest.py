"""Session fixtures: one real anvil chain on a free port with the contracts deployed; every test runs inside
an EVM snapshot that is reverted afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omnitensor.anvil import DEV_ACCOUNT_COUNT, Anvil, dev_keys
from omnitensor.chain import Chain, Signer
from omnitensor.deploy import DeployParams, deploy
from omnitensor.keys import account_from_key
from tests.support import ROLES, Net


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-gas-snapshot", action="store_true", help="rewrite contracts/gas-snapshot.json")


TEST_PARAMS = DeployParams(unbonding_delay=3600, assign_window=30)


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with Anvil(accounts=DEV_ACCOUNT_COUNT) as node:
        yield node


@pytest.fixture(scope="session")
def deployed(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Net:
    chain = Chain(anvil.url)
    manifest_path: Path = tmp_path_factory.mktemp("deploy") / "manifest.json"
    manifest, _ = deploy(chain, account_from_key(dev_keys()[0]), TEST_PARAMS, manifest_path)
    signers = {role: Signer.from_key(chain, dev_keys()[i]) for i, role in enumerate(ROLES)}
    return Net(chain, manifest, signers)


@pytest.fixture
def net(deployed: Net) -> Iterator[Net]:
    snapshot = deployed.snapshot()
    yield deployed
    deployed.revert_to(snapshot)
