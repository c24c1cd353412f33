#!/usr/bin/env bash
# Runs every benchmark on a local network and writes one report: build/bench-report/report.md (for people),
# report.json (for machines) and PNG plots. Not part of the test command; takes ~10 minutes on 2 cores.
#   usage: scripts/bench.sh [--out DIR] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh bench
exec .venv/bin/python -m benchmarks.suite "$@"
