#!/usr/bin/env bash
# The test command: sets up what the tests need (idempotent, cached) and runs lint, types and pytest.
#   .venv/                     Python environment with the package (editable) and test tools
#   (docs extra) mkdocs, for the strict site build in tests/docs/test_site.py (cached by its inputs)
#   chromium                   for the dashboard test (Debian package; installed when missing)
#   ~/.cache/otel-expansion/   the OpenTelemetry Collector built from collector-config/ (keyed by manifest),
#                              and the version matrix's venvs (matrix/, keyed by each cell's pins); both are
#                              built in the background while lint, types and the suite run
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
# Slow, cacheable set-up runs in the background, at low priority, while the suite runs: the collector build
# (a cold one takes ~11 min; the collector tests run last and wait on build.sh's lock) and, for a full run,
# the version matrix's venvs. Their logs go to $LOGS; an early exit stops them.
LOGS="$(mktemp -d)"
BACKGROUND=()
stop_background() {
  for pid in "${BACKGROUND[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  rm -rf "$LOGS"
}
trap stop_background EXIT
MATRIX=0
if [ $# -eq 0 ] && [ "${OTEL_EXPANSION_MATRIX:-1}" != 0 ]; then MATRIX=1; fi
echo "== building the collector in the background (cached; log: $LOGS/collector.log)"
setsid nice -n 10 bash collector-config/build.sh >"$LOGS/collector.log" 2>&1 &
BACKGROUND+=($!)
if [ "$MATRIX" = 1 ]; then
  echo "== preparing the version matrix's venvs in the background (cached; log: $LOGS/matrix.log)"
  PYTHON="$PY" setsid nice -n 10 bash scripts/matrix.sh prepare >"$LOGS/matrix.log" 2>&1 &
  MATRIX_PREP=$!
  BACKGROUND+=($MATRIX_PREP)
fi
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
echo "== lint and types"
.venv/bin/ruff check otel_expansion tests benchmarks examples
.venv/bin/mypy
echo "== tests"
.venv/bin/python -m pytest "$@"
# The version matrix (scripts/matrix.sh): lowest and newest declared dependencies, each in its own cached
# venv under ~/.cache/otel-expansion/matrix/; a full run (no pytest arguments) runs every cell, two at a time.
# OTEL_EXPANSION_MATRIX=0 skips it (e.g. a developer's quick full run).
if [ "$MATRIX" = 1 ]; then
  echo "== version matrix"
  wait "$MATRIX_PREP" || echo "(building the matrix's venvs in the background failed; each cell retries)"
  cat "$LOGS/matrix.log"
  PYTHON="$PY" bash scripts/matrix.sh all
fi
