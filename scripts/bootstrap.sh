#!/usr/bin/env bash
# Installs what OmniTensor needs into the checkout: Node packages from the lock file and a Python virtual
# environment (.venv) with the project and the given extras. Re-running is cheap: each step is skipped when
# its inputs have not changed since it last succeeded.
#   usage: scripts/bootstrap.sh [EXTRAS]     e.g. scripts/bootstrap.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

need() { command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is required ($2)" >&2; exit 1; }; }
need node "Node.js >= 20"
need npm "npm, shipped with Node.js"
PYTHON="${PYTHON:-python3}"
need "$PYTHON" "Python >= 3.11"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "error: Python >= 3.11 is required, found $("$PYTHON" --version)" >&2; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' \
  || { echo "error: Node.js >= 20 is required, found $(node --version)" >&2; exit 1; }

stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

mkdir -p build
npm_stamp="$(stamp package.json package-lock.json)"
if [[ ! -d node_modules || "$(cat build/.npm-stamp 2>/dev/null)" != "$npm_stamp" ]]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$npm_stamp" > build/.npm-stamp
fi

py_hash="$(stamp pyproject.toml)"
installed="$(cat build/.pip-stamp 2>/dev/null || true)"
# Up to date when pyproject.toml is unchanged and the extras asked for were installed (an install with the
# test extra also serves the plain run command, so switching between the two commands installs nothing).
if [[ ! -x .venv/bin/python || ( "$installed" != "$py_hash-$extras" && ( -n "$extras" || "${installed%%-*}" != "$py_hash" ) ) ]]; then
  echo "==> Python environment (.venv${extras:+, extras: $extras})"
  [[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
  echo "$py_hash-$extras" > build/.pip-stamp
fi
