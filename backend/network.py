"""The backend's view of the deployed contracts: one `Chain`, the manifest, the relayer's signer and the
reads the routes need (batched into one JSON-RPC round trip where it matters)."""

from __future__ import annotations

import time
from typing import Any

from eth_account.signers.local import LocalAccount

from backend.settings import ApiSettings
from omnitensor.chain import Chain, EventDecoder, Signer
from omnitensor.compiler import CONTRACTS
from omnitensor.errors import ConfigError
from omnitensor.keys import account_from_key, load_keystore
from omnitensor.manifest import Manifest, default_manifest_path

ZERO_ADDRESS = "0x" + "00" * 20
FORMATS = ("onnx", "torchscript")  # IRegistry.ModelFormat, in order


def relayer_account(settings: ApiSettings) -> LocalAccount:
    if settings.relayer_keystore is not None:
        password = settings.relayer_keystore_password.get_secret_value() if settings.relayer_keystore_password else ""
        return load_keystore(settings.relayer_keystore, password)
    if settings.relayer_private_key is not None:
        return account_from_key(settings.relayer_private_key.get_secret_value())
    raise ConfigError("the API needs a relayer key to pay for relayed writes: set OMNITENSOR_API_RELAYER_KEYSTORE "
                      "(and _PASSWORD) or OMNITENSOR_API_RELAYER_PRIVATE_KEY")


class Network:
    def __init__(self, settings: ApiSettings) -> None:
        self.chain = Chain(settings.rpc_url)
        self.manifest = Manifest.load(settings.manifest or default_manifest_path(self.chain.chain_id))
        self.manifest.check_live(self.chain)
        self.relayer = Signer(self.chain, relayer_account(settings))
        self.events = EventDecoder(*CONTRACTS)
        self.addresses = dict(self.manifest.contracts)
        self._nodes: tuple[float, list[dict[str, Any]]] = (0.0, [])

    def address(self, contract: str) -> str:
        return self.addresses[contract]

    def calldata(self, contract: str, function: str, *args: Any) -> str:
        return self.chain.encoder(contract, function)(*args)

    def views(self, *calls: tuple[str, str, tuple[Any, ...]]) -> list[Any]:
        """`(contract, function, args)` view calls against this deployment, in one round trip."""
        return self.chain.views([(c, self.addresses[c], f, a) for c, f, a in calls])

    async def aviews(self, *calls: tuple[str, str, tuple[Any, ...]]) -> list[Any]:
        """`views` without leaving the event loop (for the hottest read paths)."""
        return await self.chain.aviews([(c, self.addresses[c], f, a) for c, f, a in calls])

    def now(self) -> int:
        return int(self.chain.get_block("latest")["timestamp"], 16)

    def active_nodes(self, max_age: float = 2.0) -> list[dict[str, Any]]:
        """Active nodes with their prices (cached briefly: every inference needs the highest node price)."""
        fetched_at, nodes = self._nodes
        if nodes and time.monotonic() - fetched_at < max_age:  # "none" is never cached: a node may just have joined
            return nodes
        (addresses,) = self.views(("ComputeMarket", "getActiveNodes", (0, 200)))
        infos = self.views(*[("ComputeMarket", "getNode", (a,)) for a in addresses]) if addresses else []
        nodes = [{"address": a, "stake": i[0], "price_per_job": i[1], "price_per_second": i[2], "active": i[3]}
                 for a, i in zip(addresses, infos, strict=True)]
        self._nodes = (time.monotonic(), nodes)
        return nodes

    def logs(self, contract: str, event: str, *topics: Any, from_block: int | None = None) -> list[Any]:
        query = {"address": self.addresses[contract], "fromBlock": hex(from_block or self.manifest.deployment_block),
                 "toBlock": "latest", "topics": [self.events.topic(event), *topics]}
        return self.events.decode_all(self.chain.rpc("eth_getLogs", [query]))


def topic_int(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def topic_address(address: str) -> str:
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")
