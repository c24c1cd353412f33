#!/usr/bin/env bash
# Runs OmniTensor locally: installs what it needs, starts anvil with its state persisted in .omnitensor/,
# deploys the contracts (or finds the earlier deployment) and prints the manifest. Ctrl-C stops it; running
# it again resumes the same chain.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m omnitensor.local "$@"
