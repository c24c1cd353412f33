"""The one place where OmniTensor talks to an EVM chain: JSON-RPC transport, contract handles built from the
artifacts, calls, signed EIP-1559 transactions with a nonce manager and fee bumping, and revert decoding.

The backend and the oracle node both use this module; neither talks to web3 directly."""

from __future__ import annotations

import asyncio
import base64
import functools
import http.client
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import (
    abi_to_signature,
    function_signature_to_4byte_selector,
    keccak,
    to_checksum_address,
)
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from omnitensor.compiler import CONTRACTS, load_artifact
from omnitensor.errors import ChainError, ContractRevert, TransactionTimeout

# Solidity's built-in revert payloads.
_BUILTIN_ERRORS = {
    function_signature_to_4byte_selector("Error(string)"): ("Error", ["message"], ["string"]),
    function_signature_to_4byte_selector("Panic(uint256)"): ("Panic", ["code"], ["uint256"]),
}


def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    """selector → (name, argument names, argument types), from every error in every artifact's ABI."""
    table = dict(_BUILTIN_ERRORS)
    for name in CONTRACTS:
        for item in load_artifact(name)["abi"]:
            if item["type"] != "error":
                continue
            selector = function_signature_to_4byte_selector(abi_to_signature(item))
            table[selector] = (
                item["name"],
                [i["name"] or f"arg{n}" for n, i in enumerate(item["inputs"])],
                [_abi_type(i) for i in item["inputs"]],
            )
    return table


def _abi_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return param["type"]


def _checksummed(param: dict[str, Any], value: Any) -> Any:
    """eth_abi decodes addresses in lower case; web3 accepts only checksummed ones."""
    if param["type"] == "address":
        return to_checksum_address(value)
    if param["type"] == "tuple":
        return tuple(_checksummed(c, v) for c, v in zip(param["components"], value, strict=True))
    if param["type"].endswith("[]"):
        item = {**param, "type": param["type"][:-2]}
        return tuple(_checksummed(item, v) for v in value)
    return value


def _revert_data(error: dict[str, Any]) -> str | None:
    """Revert data from a JSON-RPC error object, as anvil, geth and most providers return it."""
    data = error.get("data")
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return data
    return None


@dataclass(frozen=True)
class FeePolicy:
    """EIP-1559 fee choice and bumping of stuck transactions."""

    base_fee_multiplier: int = 2
    min_priority_fee: int = 1_000_000  # 0.001 gwei
    bump_after_s: float = 30.0  # re-send at the same nonce with higher fees after this long unmined
    bump_percent: int = 25  # geth and anvil require ≥ 10 % more to replace a transaction
    max_bumps: int = 4


class JsonRpcTransport:
    """JSON-RPC over HTTP(S) with one persistent connection per thread. web3's provider costs ~1 ms per call
    in its middleware and `requests`; a kept-alive `http.client` connection costs ~0.25 ms on a local chain,
    which is most of a node's or the API's per-request budget."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ChainError(f"unsupported RPC URL {url!r}: use http:// or https://")
        self.url = url
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if parts.username:
            token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._timeout = timeout
        self._local = threading.local()
        self._ids = itertools.count(1)

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._local.conn = kind(self._host, self._port, timeout=self._timeout)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def post(self, payload: Any) -> Any:
        body = json.dumps(payload, default=_json_default).encode()
        for attempt in range(2):
            conn = self._connection()
            try:
                conn.request("POST", self._target, body, self._headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                # The server closed an idle kept-alive connection: the request never reached it; retry once.
                self._drop()
                if attempt:
                    raise ChainError(f"cannot reach the chain at {self.url}: {exc}") from exc
                continue
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                raise ChainError(f"cannot reach the chain at {self.url}: {exc}") from exc
            try:
                return json.loads(data)
            except ValueError as exc:
                raise ChainError(f"the chain at {self.url} answered HTTP {response.status} without "
                                 f"JSON-RPC: {data[:200]!r}") from exc
        raise AssertionError("unreachable")

    def request(self, method: str, params: list[Any]) -> Any:
        return self.post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params})

    def batch(self, calls: list[tuple[str, list[Any]]]) -> Any:
        return self.post([{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)])


class AsyncJsonRpc:
    """The same JSON-RPC over kept-alive HTTP/1.1 connections for asyncio code (the API's read paths), so a read
    costs no hop to a thread pool. Connections are pooled per instance; each carries one request at a time."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        auth = ""
        if parts.username:
            token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
            auth = f"Authorization: Basic {token}\r\n"
        self._head = (f"POST {target} HTTP/1.1\r\nHost: {parts.netloc.rsplit('@', 1)[-1]}\r\n{auth}"
                      "Content-Type: application/json\r\nAccept: application/json\r\n")
        self.url = url
        self._timeout = timeout
        self._idle: list[tuple[Any, Any]] = []

    async def post(self, payload: Any) -> Any:
        body = json.dumps(payload, default=_json_default).encode()
        request = (self._head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        for attempt in range(2):
            reused = bool(self._idle)
            try:
                reader, writer = self._idle.pop() if reused else await asyncio.wait_for(
                    asyncio.open_connection(self._host, self._port, ssl=self._https or None), self._timeout)
                writer.write(request)
                status, data, keep = await asyncio.wait_for(self._response(reader), self._timeout)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                if reused and attempt == 0 and not isinstance(exc, TimeoutError):
                    continue  # a kept-alive connection the server had closed: retry on a fresh one
                raise ChainError(f"cannot reach the chain at {self.url}: {exc!r}") from exc
            if keep:
                self._idle.append((reader, writer))
            else:
                writer.close()
            try:
                return json.loads(data)
            except ValueError as exc:
                raise ChainError(f"the chain at {self.url} answered HTTP {status} without JSON-RPC") from exc
        raise AssertionError("unreachable")

    @staticmethod
    async def _response(reader: Any) -> tuple[int, bytes, bool]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await reader.readline()).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readline()
            await reader.readline()
            data = b"".join(chunks)
        else:
            data = await reader.readexactly(int(headers.get("content-length", "0")))
        return status, data, headers.get("connection", "").lower() != "close"


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    raise TypeError(f"cannot send {type(value).__name__} in JSON-RPC")


class Chain:
    """A connection to one chain: RPC, contracts, calls and revert decoding."""

    def __init__(self, rpc_url: str, *, request_timeout: float = 30.0) -> None:
        self.rpc_url = rpc_url
        self.transport = JsonRpcTransport(rpc_url, request_timeout)
        self.w3 = Web3()  # offline: contract handles and calldata encoding only; all traffic goes through rpc()
        self._errors = _error_table()

    # ── transport ────────────────────────────────────────────────────────
    def rpc(self, method: str, params: list[Any]) -> Any:
        response = self.transport.request(method, params)
        if not isinstance(response, dict):
            raise ChainError(f"{method}: unexpected JSON-RPC answer {str(response)[:200]}")
        if "error" in response:
            error = response["error"]
            data = _revert_data(error)
            if data is not None and len(data) >= 10:
                raise self.decode_revert(data)
            raise ChainError(f"{method} failed: {error.get('message', error)}")
        return response["result"]

    def batch_rpc(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several JSON-RPC calls in one HTTP request; raises on the first failed one."""
        return self._results(calls, self.transport.batch(calls))

    def _results(self, calls: list[tuple[str, list[Any]]], responses: Any) -> list[Any]:
        if not isinstance(responses, list):  # the whole batch was refused
            error = responses.get("error", responses) if isinstance(responses, dict) else responses
            raise ChainError(f"batch request failed: {error}")
        results = []
        for (method, _), response in zip(calls, sorted(responses, key=lambda r: r["id"]), strict=True):
            if "error" in response:
                data = _revert_data(response["error"])
                if data is not None and len(data) >= 10:
                    raise self.decode_revert(data)
                raise ChainError(f"{method} failed: {response['error'].get('message')}")
            results.append(response["result"])
        return results

    @cached_property
    def chain_id(self) -> int:
        return int(self.rpc("eth_chainId", []), 16)

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber", []), 16)

    def get_block(self, number: int | str) -> dict[str, Any]:
        tag = hex(number) if isinstance(number, int) else number
        block = self.rpc("eth_getBlockByNumber", [tag, False])
        if block is None:
            raise ChainError(f"block {number} not found")
        return block

    def code_at(self, address: str) -> bytes:
        return bytes(HexBytes(self.rpc("eth_getCode", [address, "latest"])))

    def eth_balance(self, address: str) -> int:
        return int(self.rpc("eth_getBalance", [address, "latest"]), 16)

    # ── contracts ────────────────────────────────────────────────────────
    def contract(self, name: str, address: str | None = None) -> Contract:
        abi = load_artifact(name)["abi"]
        if address is None:
            return self.w3.eth.contract(abi=abi)  # type: ignore[return-value]
        return self.w3.eth.contract(address=to_checksum_address(address), abi=abi)

    def encoder(self, contract: str, function: str) -> Callable[..., str]:
        """A fast calldata encoder for one function (eth_abi straight from the artifact's ABI): web3's
        argument validation costs milliseconds on large struct arrays, which is too much on a node's hot path."""
        return self._encoder(contract, function)

    @staticmethod
    @functools.cache
    def _encoder(contract: str, function: str) -> Callable[..., str]:
        item = Chain._function_abi(contract, function)
        selector = function_signature_to_4byte_selector(abi_to_signature(item))
        types = [_abi_type(i) for i in item["inputs"]]
        return lambda *args: "0x" + (selector + abi_encode(types, list(args))).hex()

    def views(self, calls: list[tuple[str, str, str, tuple[Any, ...]]], block: str = "latest") -> list[Any]:
        """Several view calls `(contract, address, function, args)` in one JSON-RPC batch; each result decoded
        as `call` does. For read paths where one round trip matters."""
        requests, outputs = self._view_requests(calls, block)
        results = self.batch_rpc(requests) if len(requests) > 1 else [self.rpc(*requests[0])]
        return self._decode_views(results, outputs)

    async def aviews(self, calls: list[tuple[str, str, str, tuple[Any, ...]]], block: str = "latest") -> list[Any]:
        """`views` for asyncio code."""
        requests, outputs = self._view_requests(calls, block)
        responses = await self.async_transport.post(
            [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(requests)])
        return self._decode_views(self._results(requests, responses), outputs)

    @cached_property
    def async_transport(self) -> AsyncJsonRpc:
        return AsyncJsonRpc(self.rpc_url, self.transport._timeout)

    def _view_requests(self, calls: list[tuple[str, str, str, tuple[Any, ...]]],
                       block: str) -> tuple[list[tuple[str, list[Any]]], list[Any]]:
        requests = []
        outputs = []
        for contract, address, function, args in calls:
            item = self._function_abi(contract, function)
            requests.append(("eth_call", [{"to": address, "data": self.encoder(contract, function)(*args)}, block]))
            outputs.append(item["outputs"])
        return requests, outputs

    def _decode_views(self, results: list[Any], outputs: list[Any]) -> list[Any]:
        decoded = []
        for raw, outs in zip(results, outputs, strict=True):
            values = abi_decode([_abi_type(o) for o in outs], bytes(HexBytes(raw)))
            values = tuple(_checksummed(o, v) for o, v in zip(outs, values, strict=True))
            decoded.append(values[0] if len(values) == 1 else values)
        return decoded

    @staticmethod
    @functools.cache
    def _function_abi(contract: str, function: str) -> dict[str, Any]:
        return next(i for i in load_artifact(contract)["abi"] if i.get("name") == function and i["type"] == "function")

    def call(self, fn: ContractFunction, *, sender: str | None = None, block: str | int = "latest") -> Any:
        """`eth_call` of a contract function; returns the decoded output (one value, or a tuple)."""
        tx: dict[str, Any] = {"to": fn.address, "data": fn._encode_transaction_data()}
        if sender:
            tx["from"] = sender
        raw = self.rpc("eth_call", [tx, hex(block) if isinstance(block, int) else block])
        outputs = fn.abi["outputs"]
        values = abi_decode([_abi_type(o) for o in outputs], bytes(HexBytes(raw)))
        values = tuple(_checksummed(o, v) for o, v in zip(outputs, values, strict=True))
        return values[0] if len(values) == 1 else values

    def decode_revert(self, data: str | bytes) -> ContractRevert:
        raw = bytes(HexBytes(data))
        entry = self._errors.get(raw[:4])
        if entry is None:
            return ContractRevert("Unknown", {"data": HexBytes(raw).to_0x_hex()}, HexBytes(raw).to_0x_hex())
        name, arg_names, arg_types = entry
        try:
            values = abi_decode(arg_types, raw[4:])
        except Exception:  # malformed payload: keep the raw data for the caller
            return ContractRevert(name, {"data": HexBytes(raw).to_0x_hex()}, HexBytes(raw).to_0x_hex())
        args = {
            n: (HexBytes(v).to_0x_hex() if isinstance(v, bytes) else v)
            for n, v in zip(arg_names, values, strict=True)
        }
        return ContractRevert(name, args, HexBytes(raw).to_0x_hex())

    # ── receipts ─────────────────────────────────────────────────────────
    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        return self.rpc("eth_getTransactionReceipt", [tx_hash])

    def wait_for_receipt(self, tx_hash: str, timeout: float, poll: float = 0.05) -> dict[str, Any] | None:
        end = time.monotonic() + timeout
        while True:
            receipt = self.receipt(tx_hash)
            if receipt is not None or time.monotonic() >= end:
                return receipt
            time.sleep(poll)


class NonceManager:
    """Hands out consecutive nonces for one key, so that many transactions can be in flight at once."""

    def __init__(self, chain: Chain, address: str) -> None:
        self._chain = chain
        self._address = address
        self._lock = threading.Lock()
        self._next: int | None = None

    def reserve(self) -> int:
        with self._lock:
            if self._next is None:
                self._next = int(self._chain.rpc("eth_getTransactionCount", [self._address, "pending"]), 16)
            nonce = self._next
            self._next += 1
            return nonce

    def resync(self) -> None:
        """Forget the local counter; the next `reserve` reads the pending count from the chain."""
        with self._lock:
            self._next = None


class Signer:
    """One key that sends transactions: simulation first, EIP-1559 fees, its own nonce manager, fee bumping
    of transactions stuck in the mempool, and receipts checked."""

    def __init__(self, chain: Chain, account: LocalAccount, fees: FeePolicy | None = None) -> None:
        self.chain = chain
        self.account = account
        self.address: str = account.address
        self.fees = fees or FeePolicy()
        self.nonces = NonceManager(chain, account.address)

    @classmethod
    def from_key(cls, chain: Chain, private_key: str, fees: FeePolicy | None = None) -> Signer:
        return cls(chain, Account.from_key(private_key), fees)

    def fee_caps(self, latest: dict[str, Any], tip_hex: str) -> tuple[int, int]:
        """(maxFeePerGas, maxPriorityFeePerGas) from the latest block and eth_maxPriorityFeePerGas."""
        priority = max(int(tip_hex, 16), self.fees.min_priority_fee)
        return int(latest["baseFeePerGas"], 16) * self.fees.base_fee_multiplier + priority, priority

    def simulate(self, fn: ContractFunction | None = None, *, to: str | None = None, data: str = "0x",
                 value: int = 0, gas: int | None = None) -> tuple[dict[str, Any], bytes]:
        """Simulates the call and prepares its transaction in one JSON-RPC round trip (eth_call,
        eth_estimateGas and the fee inputs, batched). Returns the transaction (fees set, no nonce) and the
        call's return data. A revert raises ContractRevert here, before anything is signed or sent."""
        if fn is not None:
            to, data = fn.address, fn._encode_transaction_data()
        call: dict[str, Any] = {"from": self.address, "data": data, "value": hex(value)}
        if to is not None:  # None: contract creation
            call["to"] = to
        requests: list[tuple[str, list[Any]]] = [
            ("eth_call", [call, "latest"]),
            ("eth_getBlockByNumber", ["latest", False]),
            ("eth_maxPriorityFeePerGas", []),
        ]
        if gas is None:
            requests.append(("eth_estimateGas", [call]))
        results = self.chain.batch_rpc(requests)
        if gas is None:
            estimate = int(results[3], 16)
            gas = estimate + estimate // 5 + 10_000  # headroom for state changes between estimate and mining
        max_fee, priority = self.fee_caps(results[1], results[2])
        tx = {"data": data, "value": value, "gas": gas, "chainId": self.chain.chain_id,
              "maxFeePerGas": max_fee, "maxPriorityFeePerGas": priority, "type": 2}
        if to is not None:
            tx["to"] = to
        return tx, bytes(HexBytes(results[0]))

    def build(self, fn: ContractFunction | None = None, **kwargs: Any) -> dict[str, Any]:
        """The simulated transaction of `simulate`, without the return data."""
        return self.simulate(fn, **kwargs)[0]

    def send(self, fn: ContractFunction | None = None, *, wait: bool = True, timeout: float = 120.0,
             **kwargs: Any) -> dict[str, Any]:
        """Simulates, signs and sends; returns the receipt (or `{"transactionHash": ...}` with
        `wait=False`). Raises ContractRevert when the simulation or the mined transaction reverts."""
        tx = self.build(fn, **kwargs)
        return self.send_built(tx, wait=wait, timeout=timeout)

    def send_built(self, tx: dict[str, Any], *, wait: bool = True, timeout: float = 120.0,
                   before_send: Callable[[str, str, int], None] | None = None) -> dict[str, Any]:
        """Signs and sends a built transaction. `before_send(tx_hash, raw_tx, nonce)` runs before each
        broadcast (the first and every fee bump), so a caller can record it durably first."""
        nonce = self.nonces.reserve()
        max_fee, priority = tx["maxFeePerGas"], tx["maxPriorityFeePerGas"]
        deadline = time.monotonic() + timeout
        sent: list[str] = []
        for bump in range(self.fees.max_bumps + 1):
            signed = self.account.sign_transaction(
                {**tx, "nonce": nonce, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": priority}
            )
            tx_hash = HexBytes(signed.hash).to_0x_hex()
            raw = HexBytes(signed.raw_transaction).to_0x_hex()
            if before_send is not None:
                before_send(tx_hash, raw, nonce)
            try:
                self.chain.rpc("eth_sendRawTransaction", [raw])
            except ChainError as exc:
                if bump == 0 and "nonce" in str(exc).lower():
                    self.nonces.resync()
                    raise
                if not sent:
                    raise
                # A replacement can be refused when an earlier version was mined meanwhile; look for it below.
            else:
                sent.append(tx_hash)
            if not wait:
                return {"transactionHash": tx_hash, "nonce": nonce}
            wait_s = min(self.fees.bump_after_s, max(0.0, deadline - time.monotonic()))
            receipt = self._first_receipt(sent, wait_s)
            if receipt is not None:
                return {**self._checked(receipt, tx), "nonce": nonce}
            if time.monotonic() >= deadline:
                break
            max_fee = max_fee * (100 + self.fees.bump_percent) // 100
            priority = priority * (100 + self.fees.bump_percent) // 100
        raise TransactionTimeout(f"transaction with nonce {nonce} not mined within {timeout:.0f}s ({sent})")

    def rebroadcast(self, raw: str) -> None:
        """Sends an already-signed transaction again (after a restart); "already known" and "nonce too low"
        mean it is pending or mined, which is what the caller wants."""
        try:
            self.chain.rpc("eth_sendRawTransaction", [raw])
        except ChainError as exc:
            message = str(exc).lower()
            benign = ("already known", "nonce too low", "already imported", "known transaction")
            if not any(s in message for s in benign):
                raise

    def _first_receipt(self, hashes: list[str], timeout: float) -> dict[str, Any] | None:
        end = time.monotonic() + timeout
        pause = 0.001  # automining chains answer at once; others get polled less and less often
        while True:
            for tx_hash in hashes:
                receipt = self.chain.receipt(tx_hash)
                if receipt is not None:
                    return receipt
            if time.monotonic() >= end:
                return None
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    def _checked(self, receipt: dict[str, Any], tx: dict[str, Any]) -> dict[str, Any]:
        if int(receipt["status"], 16) == 1:
            return receipt
        # Replay on the parent block's state to recover the revert reason (best effort: transactions mined
        # earlier in the same block are not replayed).
        call = {"from": self.address, "to": tx.get("to"), "data": tx["data"], "value": hex(tx["value"])}
        self.chain.rpc("eth_call", [call, hex(int(receipt["blockNumber"], 16) - 1)])
        raise ChainError(f"transaction {receipt['transactionHash']} reverted on-chain")


def gas_used(receipt: dict[str, Any]) -> int:
    return int(receipt["gasUsed"], 16)


@dataclass(frozen=True)
class Event:
    name: str
    address: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


class EventDecoder:
    """Decodes raw JSON-RPC logs of the given contracts' events (by topic0, from the ABIs)."""

    def __init__(self, *contract_names: str) -> None:
        self._by_topic: dict[bytes, tuple[str, list[dict[str, Any]]]] = {}
        for name in contract_names:
            for item in load_artifact(name)["abi"]:
                if item["type"] == "event":
                    topic = keccak(text=abi_to_signature(item))
                    self._by_topic[topic] = (item["name"], item["inputs"])

    def topic(self, event_name: str) -> str:
        for topic, (name, _) in self._by_topic.items():
            if name == event_name:
                return HexBytes(topic).to_0x_hex()
        raise KeyError(event_name)

    def decode(self, log: dict[str, Any]) -> Event | None:
        topics = [bytes(HexBytes(t)) for t in log["topics"]]
        if not topics or topics[0] not in self._by_topic:
            return None
        name, inputs = self._by_topic[topics[0]]
        indexed = [i for i in inputs if i["indexed"]]
        plain = [i for i in inputs if not i["indexed"]]
        args: dict[str, Any] = {}
        for param, topic in zip(indexed, topics[1:], strict=True):
            (value,) = abi_decode([_abi_type(param)], topic)
            args[param["name"]] = _checksummed(param, value)
        values = abi_decode([_abi_type(p) for p in plain], bytes(HexBytes(log["data"])))
        args.update({p["name"]: _checksummed(p, v) for p, v in zip(plain, values, strict=True)})
        return Event(name, to_checksum_address(log["address"]), args, int(log["blockNumber"], 16),
                     log["blockHash"], log["transactionHash"], int(log["logIndex"], 16))

    def decode_all(self, logs: list[dict[str, Any]]) -> list[Event]:
        return [e for e in (self.decode(log) for log in logs) if e is not None]
