#!/usr/bin/env bash
# The test command: sets up what the tests need (idempotent, cached) and runs lint, types and pytest.
#   .venv/                     Python environment with the package (editable) and test tools
#   (docs extra) mkdocs, for the strict site build in tests/docs/test_site.py (cached by its inputs)
#   chromium                   for the dashboard test (Debian package; installed when missing)
#   ~/.cache/otel-expansion/   the OpenTelemetry Collector built from collector-config/ (keyed by manifest),
#                              and the version matrix's venvs (matrix/, keyed by each cell's pins)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
echo "== installing the package and test tools"
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[test,docs]'
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (dashboard test)"
  bash scripts/apt_install.sh chromium  # waits for another apt's lock; shows apt's output on failure
fi
echo "== building the collector (cached)"
bash collector-config/build.sh
echo "== lint and types"
.venv/bin/ruff check otel_expansion tests benchmarks examples
.venv/bin/mypy
echo "== tests"
.venv/bin/python -m pytest "$@"
# The version matrix (scripts/matrix.sh): lowest and newest declared dependencies, each in its own cached
# venv under ~/.cache/otel-expansion/matrix/; a full run (no pytest arguments) runs every cell, two at a time.
# OTEL_EXPANSION_MATRIX=0 skips it (e.g. a developer's quick full run).
if [ $# -eq 0 ] && [ "${OTEL_EXPANSION_MATRIX:-1}" != 0 ]; then
  echo "== version matrix"
  bash scripts/matrix.sh all
fi
