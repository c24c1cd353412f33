"""Helpers for tests that drive the real contracts on a real anvil."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_utils import to_checksum_address
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from omnitensor.anvil import dev_keys
from omnitensor.chain import Chain, Event, EventDecoder, Signer
from omnitensor.compiler import CONTRACTS
from omnitensor.errors import ContractRevert
from omnitensor.jobs import job_from_event
from omnitensor.manifest import Manifest
from oracle.settings import NodeSettings

OMNIT = 10**18
ROLES = ("admin", "alice", "bob", "carol", "node1", "node2", "owner", "relayer")


@dataclass
class Net:
    """A deployed OmniTensor on a test chain, with a funded signer per role."""

    chain: Chain
    manifest: Manifest
    signers: dict[str, Signer]

    def __post_init__(self) -> None:
        self.token: Contract = self.chain.contract("OmniToken", self.manifest.token)
        self.registry: Contract = self.chain.contract("Registry", self.manifest.registry)
        self.market: Contract = self.chain.contract("ComputeMarket", self.manifest.market)
        self.forwarder: Contract = self.chain.contract("OmniForwarder", self.manifest.forwarder)
        self.events = EventDecoder(*CONTRACTS)

    def addr(self, role: str) -> str:
        return self.signers[role].address

    def send(self, role: str, fn: ContractFunction, **kwargs: Any) -> dict[str, Any]:
        return self.signers[role].send(fn, **kwargs)

    def call(self, fn: ContractFunction, sender: str | None = None) -> Any:
        return self.chain.call(fn, sender=self.addr(sender) if sender else None)

    def logs(self, receipt: dict[str, Any], name: str | None = None) -> list[Event]:
        events = self.events.decode_all(receipt["logs"])
        return [e for e in events if name is None or e.name == name]

    def event(self, receipt: dict[str, Any], name: str) -> dict[str, Any]:
        (found,) = self.logs(receipt, name)
        return found.args

    def now(self) -> int:
        return int(self.chain.get_block("latest")["timestamp"], 16)

    def advance(self, seconds: int) -> None:
        self.chain.rpc("evm_increaseTime", [seconds])
        self.chain.rpc("evm_mine", [])

    def reorg(self, depth: int) -> None:
        """Replaces the last `depth` blocks with empty ones (anvil_reorg); their transactions are gone."""
        self.chain.rpc("anvil_reorg", [depth, []])
        for signer in self.signers.values():
            signer.nonces.resync()

    def snapshot(self) -> str:
        return str(self.chain.rpc("evm_snapshot", []))

    def revert_to(self, snapshot_id: str) -> None:
        self.chain.rpc("evm_revert", [snapshot_id])
        for signer in self.signers.values():
            signer.nonces.resync()

    # ── common set-ups ──
    def omnit(self, role: str, amount: int) -> None:
        """Gives `role` OMNIT from the admin's supply."""
        self.send("admin", self.token.functions.transfer(self.addr(role), amount))

    def fund_deposit(self, role: str, amount: int) -> None:
        self.omnit(role, amount)
        self.send(role, self.token.functions.approve(self.manifest.market, amount))
        self.send(role, self.market.functions.deposit(amount))

    def register_node(self, role: str, stake: int = 100 * OMNIT, per_job: int = OMNIT // 100,
                      per_second: int = OMNIT // 1000) -> None:
        self.omnit(role, stake)
        self.send(role, self.token.functions.approve(self.manifest.market, stake))
        self.send(role, self.market.functions.registerNode(stake, per_job, per_second))

    def register_model(self, role: str = "owner", price: int = OMNIT // 50, fmt: int = 0) -> int:
        receipt = self.send(role, self.registry.functions.registerModel(
            b"\x11" * 32, fmt, price, "blob://sha256/11", "digits-mlp"))
        return int(self.event(receipt, "ModelRegistered")["modelId"])

    def open_job(self, who: str = "alice", model_id: int = 1, node: str | None = "node1", *,
                 max_fee: int = 10 * OMNIT, ttl: int = 3600, data: bytes = b"in",
                 digest: bytes = b"\x00" * 32) -> tuple[int, tuple[Any, ...]]:
        """Opens a job; returns its id and its `Job` tuple."""
        node_address = self.addr(node) if node else "0x" + "00" * 20
        receipt = self.send(who, self.market.functions.openJob(
            model_id, to_checksum_address(node_address), max_fee, self.now() + ttl, digest, data))
        args = self.event(receipt, "JobOpened")
        return args["jobId"], job_tuple(args)

    def deposit_of(self, role_or_addr: str) -> tuple[int, int]:
        address = self.addr(role_or_addr) if role_or_addr in self.signers else role_or_addr
        return tuple(self.call(self.market.functions.balanceOf(address)))  # type: ignore[return-value]


def node_settings(net: Net, role: str, **values: Any) -> NodeSettings:
    """A test node's settings: the role's development key, fast polling, no metrics port; `values` (its
    manifest, blob_dir and state_db at least) on top."""
    defaults: dict[str, Any] = {
        "rpc_url": net.chain.rpc_url, "private_key": dev_keys()[ROLES.index(role)], "metrics_port": 0,
        "poll_interval": 0.02, "usage_report_interval": 0.5, "fallback_grace": 0,
    }
    return NodeSettings(**{**defaults, **values})


job_tuple = job_from_event  # the name the contract tests read best with


@contextlib.contextmanager
def reverts(name: str, **expected: Any) -> Iterator[list[ContractRevert]]:
    """Expects a ContractRevert named `name` whose arguments include `expected`."""
    caught: list[ContractRevert] = []
    with pytest.raises(ContractRevert) as info:
        yield caught
    err = info.value
    assert err.name == name, f"expected {name}, got {err}"
    for key, value in expected.items():
        actual = err.args_by_name[key]
        if isinstance(actual, str) and isinstance(value, str):
            assert actual.lower() == value.lower(), f"{name}.{key}: {actual} != {value}"
        else:
            assert actual == value, f"{name}.{key}: {actual} != {value}"
    caught.append(err)
