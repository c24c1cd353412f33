#!/usr/bin/env bash
# The test command: installs everything the tests need, then runs all of them (a real anvil is started by
# the tests themselves). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
.venv/bin/ruff check omnitensor oracle backend benchmarks tests
exec .venv/bin/python -m pytest "$@"
