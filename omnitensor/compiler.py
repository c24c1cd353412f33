"""Compiles the Solidity sources with py-solc-x through the repository's `solc` adapter (the npm build of
the compiler pinned in package.json) and writes one JSON artifact per contract.

A fingerprint of the sources, the compiler version and the settings is stored next to the artifacts; when
it matches, compiling is a no-op."""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import solcx

from omnitensor.errors import CompilationError
from omnitensor.paths import ARTIFACTS_DIR, CONTRACTS_DIR, NODE_MODULES, SOLC_ADAPTER

# The deployable contracts; everything they import is compiled with them.
CONTRACTS = ("OmniToken", "OmniForwarder", "Registry", "ComputeMarket")
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 10_000
_FINGERPRINT = "fingerprint.txt"


@functools.cache
def compiler_version() -> str:
    out = subprocess.run([str(SOLC_ADAPTER), "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1].removeprefix("Version: ")


def _sources() -> list[Path]:
    return sorted(p for p in CONTRACTS_DIR.rglob("*.sol") if "test" not in p.relative_to(CONTRACTS_DIR).parts)


def _settings() -> dict[str, Any]:
    return {
        "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
        "viaIR": True,
        "evmVersion": EVM_VERSION,
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"]}},
    }


def _fingerprint(version: str) -> str:
    h = hashlib.sha256(version.encode())
    h.update(json.dumps(_settings(), sort_keys=True).encode())
    oz = NODE_MODULES / "@openzeppelin" / "contracts" / "package.json"
    h.update(json.loads(oz.read_text())["version"].encode())
    for path in _sources():
        h.update(str(path.relative_to(CONTRACTS_DIR)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def compile_contracts(force: bool = False) -> Path:
    """Compiles if anything changed; returns the artifacts folder."""
    version = compiler_version()
    fingerprint = _fingerprint(version)
    stamp = ARTIFACTS_DIR / _FINGERPRINT
    if not force and stamp.exists() and stamp.read_text() == fingerprint:
        return ARTIFACTS_DIR

    sources = {f"contracts/{p.relative_to(CONTRACTS_DIR)}": {"content": p.read_text()} for p in _sources()}
    standard_input = {"language": "Solidity", "sources": sources, "settings": _settings()}
    try:
        output = solcx.compile_standard(
            standard_input, solc_binary=SOLC_ADAPTER, base_path=str(CONTRACTS_DIR.parent)
        )
    except solcx.exceptions.SolcError as exc:
        raise CompilationError(str(exc)) from exc
    errors = [e for e in output.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise CompilationError("\n".join(e["formattedMessage"] for e in errors))

    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    for source, contracts in output["contracts"].items():
        for name, data in contracts.items():
            if name not in CONTRACTS:
                continue
            artifact = {
                "contractName": name,
                "sourceName": source,
                "compiler": version,
                "abi": data["abi"],
                "bytecode": "0x" + data["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
                "metadata": data["metadata"],
            }
            (ARTIFACTS_DIR / f"{name}.json").write_text(json.dumps(artifact, indent=1))
    stamp.write_text(fingerprint)
    return ARTIFACTS_DIR


@functools.cache
def load_artifact(name: str) -> dict[str, Any]:
    """The artifact of a deployable contract, compiling first if the sources changed (checked once per
    process: sources do not change under a running node or API)."""
    if name not in CONTRACTS:
        raise KeyError(f"unknown contract {name!r}; expected one of {CONTRACTS}")
    path = _compiled_once() / f"{name}.json"
    return json.loads(path.read_text())


@functools.cache
def _compiled_once() -> Path:
    return compile_contracts()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Compile the OmniTensor contracts.")
    parser.add_argument("--force", action="store_true", help="recompile even if nothing changed")
    args = parser.parse_args()
    folder = compile_contracts(force=args.force)
    print(f"artifacts in {folder} (solc {compiler_version()})")


if __name__ == "__main__":
    main()
