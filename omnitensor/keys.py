"""Loading signing keys: an encrypted Web3 Secret Storage keystore in production, a raw key from the
environment for local development."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keyfile import create_keyfile_json

from omnitensor.errors import ConfigError


def load_keystore(path: Path, password: str) -> LocalAccount:
    try:
        keyfile = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"keystore {path} not found") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"keystore {path} is not JSON: {exc}") from exc
    try:
        key = Account.decrypt(keyfile, password)
    except ValueError as exc:
        raise ConfigError(f"cannot decrypt keystore {path}: wrong password or corrupt file") from exc
    return Account.from_key(key)


def write_keystore(path: Path, private_key: str | bytes, password: str, *, scrypt_n: int = 262144) -> Path:
    """Encrypts a key with scrypt (cost `scrypt_n`; the default is eth-keyfile's) and writes it 0600."""
    key = bytes.fromhex(private_key.removeprefix("0x")) if isinstance(private_key, str) else private_key
    keyfile = create_keyfile_json(key, password.encode(), kdf="scrypt", iterations=scrypt_n)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps(keyfile))
    return path


def account_from_key(private_key: str) -> LocalAccount:
    try:
        return Account.from_key(private_key)
    except (ValueError, TypeError) as exc:
        raise ConfigError("the private key is not a 32-byte hex string") from exc
