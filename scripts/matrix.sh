#!/usr/bin/env bash
# The version matrix: the package against the lowest and the newest releases of what it declares.
#
#   scripts/matrix.sh              list the cells and their pins
#   scripts/matrix.sh CELL [...]   run those cells (one venv each), e.g. scripts/matrix.sh lowest
#   scripts/matrix.sh all          run every cell, MATRIX_JOBS at a time (default 2)
#   scripts/matrix.sh prepare      build every cell's venv and run nothing
#
# Each cell is its own venv under ~/.cache/otel-expansion/matrix/, keyed by a hash of the cell's pins, the
# Python version and this file's test requirements: a warm cell installs nothing. Cells with open
# ("newest") pins also key by the ISO week, so they pick up new releases weekly rather than never.
# The package itself runs from this checkout (a .pth file), so the cached venv never holds a stale copy.
# Each cell runs the representative subset below: the non-slow tests of sdk/, export/, journal/, spool/,
# collect/, privacy/ and the API tests. pyproject's declared lower bounds are the `lowest` cell's pins.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
PY="${PYTHON:-python3}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/otel-expansion/matrix"
TESTS=(tests/sdk tests/export tests/journal tests/spool tests/collect tests/privacy tests/test_api.py)
TEST_TOOLS="pytest>=8 pytest-timeout>=2.2 hypothesis>=6"
OTEL_LOW="opentelemetry-api==1.30.0 opentelemetry-sdk==1.30.0 opentelemetry-proto==1.30.0 opentelemetry-exporter-otlp-proto-common==1.30.0 opentelemetry-instrumentation==0.51b0"
OTEL_NEW="opentelemetry-api opentelemetry-sdk opentelemetry-proto opentelemetry-exporter-otlp-proto-common opentelemetry-instrumentation"

CELLS=(lowest protobuf5 newest)
pins() {
  case "$1" in
    # every declared lower bound at once: OpenTelemetry 1.30 (its proto needs protobuf 5), protobuf's lowest 5.x
    lowest) echo "$OTEL_LOW protobuf==5.26.1 googleapis-common-protos==1.63.1 psutil==5.9.4 click==8.1.0 typer==0.12.0" ;;
    # the newest OpenTelemetry on the newest protobuf 5.x (the newest cell has protobuf's newest major)
    protobuf5) echo "$OTEL_NEW protobuf<6 googleapis-common-protos psutil click typer" ;;
    # the newest release of everything
    newest) echo "$OTEL_NEW protobuf googleapis-common-protos psutil click typer" ;;
    *) return 1 ;;
  esac
}

key() {
  local pins="$1" extra=""
  # a cell with any unpinned requirement follows new releases weekly
  for req in $pins; do case "$req" in *==*) ;; *) extra="$(date -u +%G-W%V)" ;; esac; done
  printf '%s\n%s\n%s\n%s\n' "$pins" "$TEST_TOOLS" "$("$PY" -c 'import sys; print(sys.version)')" "$extra" \
    | sha256sum | cut -c1-16
}

venv_of() {
  local pins
  pins="$(pins "$1")" || { echo "matrix: unknown cell '$1' (cells: ${CELLS[*]})" >&2; return 2; }
  echo "$CACHE/$1-$(key "$pins")"
}

build_cell() {
  # the cell's venv, built once: concurrent calls (test.sh prepares cells in the background while the suite
  # runs) wait on the cell's lock, then find it complete
  local cell="$1" pins venv
  pins="$(pins "$cell")" && venv="$(venv_of "$cell")" || return 2
  mkdir -p "$CACHE"
  (
    flock 9
    if [ ! -f "$venv/.complete" ]; then
      echo "== matrix $cell: building $venv"
      rm -rf "$venv"
      "$PY" -m venv "$venv"
      # shellcheck disable=SC2086
      "$venv/bin/pip" install -q $pins $TEST_TOOLS
      touch "$venv/.complete"
      ls -d "$CACHE/$cell"-* 2>/dev/null | grep -v -e "^$venv\$" -e '\.lock$' | xargs -r rm -rf  # older keys
    fi
  ) 9>"$CACHE/$cell.lock"
}

run_cell() {
  local cell="$1" venv log started=$SECONDS
  venv="$(venv_of "$cell")" || return 2
  build_cell "$cell" || { echo "== matrix $cell: FAILED to build its venv"; return 1; }
  "$venv/bin/python" -c 'import site, sys; open(site.getsitepackages()[0] + "/otel_expansion_src.pth", "w").write(sys.argv[1] + "\n")' "$ROOT"
  echo "== matrix $cell: $("$venv/bin/pip" list --format=freeze 2>/dev/null \
    | grep -iE '^(opentelemetry-(api|sdk|proto|instrumentation)|protobuf|click|typer|psutil|googleapis)' | tr '\n' ' ')"
  log="$(mktemp)"
  tmp="$(mktemp -d)"  # each cell its own pytest temp root: cells run side by side
  # the PII corpus (slow, and its generators faker/pyahocorasick) is not part of the subset
  if (cd "$ROOT" && PYTHONPATH="$ROOT" "$venv/bin/python" -m pytest -x -m "not slow" -p no:cacheprovider \
        --basetemp="$tmp/t" --ignore=tests/privacy/test_corpus_leaks.py "${TESTS[@]}" >"$log" 2>&1); then
    echo "== matrix $cell: $(grep -E '[0-9]+ passed' "$log" | tail -1) ($((SECONDS - started)) s in all)"
    rm -rf "$log" "$tmp"
  else
    echo "== matrix $cell: FAILED ($((SECONDS - started)) s)"
    tail -60 "$log"
    rm -rf "$log" "$tmp"
    return 1
  fi
}

if [ $# -eq 0 ]; then
  for c in "${CELLS[@]}"; do printf '%-10s %s\n' "$c" "$(pins "$c")"; done
  exit 0
fi
if [ "$1" = prepare ]; then
  # build every cell's venv, no tests (scripts/test.sh runs this in the background while the suite runs)
  for c in "${CELLS[@]}"; do build_cell "$c" || exit 1; done
  exit 0
fi
if [ "$1" = all ]; then
  # cells are independent (own venv, own temporary homes, ports chosen by the OS): run MATRIX_JOBS at a time
  printf '%s\n' "${CELLS[@]}" | xargs -P "${MATRIX_JOBS:-2}" -I{} bash "${BASH_SOURCE[0]}" {}
  exit $?
fi
status=0
for c in "$@"; do run_cell "$c" || status=1; done
exit $status
