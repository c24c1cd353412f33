"""Where the project's files are. The code runs from a checkout (installed editable), so the repository
root is the parent of this package unless OMNITENSOR_ROOT says otherwise; local state goes to .omnitensor/
in it unless OMNITENSOR_HOME says otherwise."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(os.environ.get("OMNITENSOR_ROOT", Path(__file__).resolve().parents[1]))
CONTRACTS_DIR = ROOT / "contracts"
NODE_MODULES = ROOT / "node_modules"
BUILD_DIR = ROOT / "build"
ARTIFACTS_DIR = BUILD_DIR / "contracts"
SOLC_ADAPTER = ROOT / "scripts" / "solc"
DEFAULT_STATE_DIR = Path(os.environ.get("OMNITENSOR_HOME", ROOT / ".omnitensor"))  # chain state, keys, databases


def node_binary(tool: str) -> Path:
    """The native binary that npm's @foundry-rs/<tool> ships (skipping its Node.js wrapper, so signals
    reach the real process)."""
    for candidate in sorted(NODE_MODULES.glob(f"@foundry-rs/{tool}-*/bin/{tool}")):
        if os.access(candidate, os.X_OK):
            return candidate
    from omnitensor.errors import ConfigError

    raise ConfigError(f"{tool} not found under {NODE_MODULES}/@foundry-rs; run `npm ci` in {ROOT}")
