#!/usr/bin/env bash
# Runs the whole OmniTensor network locally (`omnitensor up`): installs what it needs, starts anvil with its
# state persisted in .omnitensor/, deploys the contracts (or finds the earlier deployment), starts an oracle
# node and the HTTP API, and creates a demo account and model. Ctrl-C stops everything; running it again
# resumes the same chain, accounts, models and jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m omnitensor.cli up "$@"
