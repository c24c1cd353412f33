"""Starts and stops a local anvil chain (the npm @foundry-rs/anvil binary)."""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from eth_account import Account

from omnitensor.errors import ChainError
from omnitensor.paths import node_binary

# anvil's default mnemonic; the keys it derives are public and for local chains only.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNT_COUNT = 10


@functools.cache
def dev_keys(count: int = DEV_ACCOUNT_COUNT) -> tuple[str, ...]:
    """The private keys of anvil's funded development accounts, derived like anvil does (BIP-44)."""
    Account.enable_unaudited_hdwallet_features()
    return tuple(
        Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key.to_0x_hex()
        for i in range(count)
    )


LOCAL_CHAIN_ID = 31337


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


class Anvil:
    """A running anvil process. Use as a context manager, or call `start` and `stop`."""

    def __init__(
        self,
        port: int | None = None,
        *,
        state_file: Path | None = None,
        block_time: float | None = None,
        accounts: int = DEV_ACCOUNT_COUNT,
        chain_id: int = LOCAL_CHAIN_ID,
        log_file: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.state_file = state_file
        self.block_time = block_time
        self.accounts = accounts
        self.chain_id = chain_id
        self.log_file = log_file
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Anvil:
        if port_in_use(self.port):
            raise ChainError(f"port {self.port} is already in use; stop what listens there or choose another port")
        args = [str(node_binary("anvil")), "--port", str(self.port), "--host", "127.0.0.1",
                "--accounts", str(self.accounts), "--chain-id", str(self.chain_id), *self.extra_args]
        if self.block_time:
            args += ["--block-time", str(self.block_time)]
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            args += ["--state", str(self.state_file), "--state-interval", "1"]
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise ChainError(f"anvil exited with code {self.process.returncode} (args: {' '.join(args)})")
            if self._responds():
                return self
            time.sleep(0.05)
        self.stop()
        raise ChainError(f"anvil did not answer on {self.url} within {timeout:.0f}s")

    def _responds(self) -> bool:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # anvil writes its state file on SIGTERM
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
