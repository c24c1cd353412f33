import json
import subprocess

from omnitensor.compiler import ARTIFACTS_DIR, CONTRACTS, compile_contracts, compiler_version
from omnitensor.paths import ROOT, SOLC_ADAPTER


def test_adapter_speaks_the_native_command_line() -> None:
    out = subprocess.run([str(SOLC_ADAPTER), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1].startswith("Version: 0.8.30+commit")
    bad = subprocess.run([str(SOLC_ADAPTER), "--bin", "x.sol"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "unsupported argument" in bad.stderr


def test_large_standard_json_output_is_not_truncated() -> None:
    """The full output of our sources is far above the 64 KiB pipe buffer that cut off naive adapters."""
    sources = {f"contracts/{name}": {"content": (ROOT / "contracts" / name).read_text()}
               for name in ("OmniToken.sol", "Registry.sol")}
    request = {"language": "Solidity", "sources": sources,
               "settings": {"outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"], "": ["ast"]}}}}
    proc = subprocess.run([str(SOLC_ADAPTER), "--standard-json", "--base-path", str(ROOT)],
                          input=json.dumps(request), capture_output=True, text=True, check=True)
    assert len(proc.stdout) > 64 * 1024
    output = json.loads(proc.stdout)
    assert not [e for e in output.get("errors", []) if e["severity"] == "error"]
    assert "Registry" in output["contracts"]["contracts/Registry.sol"]


def test_rebuild_without_changes_is_a_no_op() -> None:
    compile_contracts()
    stamps = {name: (ARTIFACTS_DIR / f"{name}.json").stat().st_mtime_ns for name in CONTRACTS}
    compile_contracts()
    assert stamps == {name: (ARTIFACTS_DIR / f"{name}.json").stat().st_mtime_ns for name in CONTRACTS}
    artifact = json.loads((ARTIFACTS_DIR / "ComputeMarket.json").read_text())
    assert artifact["compiler"] == compiler_version()
    assert len(artifact["bytecode"]) > 10_000
    assert len(artifact["deployedBytecode"]) > 10_000
    assert json.loads(artifact["metadata"])["settings"]["evmVersion"] == "cancun"
