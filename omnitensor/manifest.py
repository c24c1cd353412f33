"""The deployment manifest: where the contracts of one deployment live. Written by the deploy script, read by
the backend and the oracle node."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import keccak

from omnitensor.chain import Chain
from omnitensor.errors import DeploymentNotFound
from omnitensor.paths import DEFAULT_STATE_DIR


def default_manifest_path(chain_id: int) -> Path:
    return DEFAULT_STATE_DIR / "deployments" / f"{chain_id}.json"


@dataclass(frozen=True)
class Manifest:
    chain_id: int
    deployment_block: int
    compiler: str
    deployer: str
    contracts: dict[str, str]  # contract name → address
    code_hashes: dict[str, str]  # contract name → keccak256 of its runtime code, to recognise the deployment
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def market(self) -> str:
        return self.contracts["ComputeMarket"]

    @property
    def registry(self) -> str:
        return self.contracts["Registry"]

    @property
    def token(self) -> str:
        return self.contracts["OmniToken"]

    @property
    def forwarder(self) -> str:
        return self.contracts["OmniForwarder"]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)  # readers never see a half-written manifest

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise DeploymentNotFound(
                f"no deployment manifest at {path}; deploy first with `omnitensor-deploy --rpc URL`"
            ) from exc
        return cls(**data)

    def is_live_on(self, chain: Chain) -> bool:
        """True when the chain has this deployment's exact contracts at its addresses."""
        if chain.chain_id != self.chain_id:
            return False
        for name, address in self.contracts.items():
            code = chain.code_at(address)
            if not code or "0x" + keccak(code).hex() != self.code_hashes.get(name):
                return False
        return True

    def check_live(self, chain: Chain) -> None:
        if chain.chain_id != self.chain_id:
            raise DeploymentNotFound(
                f"the manifest is for chain {self.chain_id} but {chain.rpc_url} is chain {chain.chain_id}"
            )
        if not self.is_live_on(chain):
            raise DeploymentNotFound(
                f"the contracts of the manifest are not on the chain at {chain.rpc_url} "
                "(was the local chain reset?); deploy again"
            )
