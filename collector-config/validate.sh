#!/usr/bin/env bash
# Validate every collector config in this folder (all *.yaml except manifest.yaml) with the collector
# built from manifest.yaml. `validate` resolves the config and builds every pipeline without starting
# it, so unknown keys, bad regexes and bad OTTL fail here. Environment variables get harmless defaults
# (the caller's values win); nothing is bound and nothing is written outside a temporary directory.
# Prints one line per config; exits non-zero if any config, or the build, fails.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! bin="$("$here/build.sh")"; then
  echo "FAIL build: $here/build.sh could not build the collector" >&2
  exit 2
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

export OTEL_EXPANSION_BACKEND_ENDPOINT="${OTEL_EXPANSION_BACKEND_ENDPOINT:-http://127.0.0.1:4319}"
export OTEL_EXPANSION_COLLECTOR_STORAGE="${OTEL_EXPANSION_COLLECTOR_STORAGE:-$scratch/collector-storage}"
export OTEL_EXPANSION_COLLECTOR_FILE_PATH="${OTEL_EXPANSION_COLLECTOR_FILE_PATH:-$scratch/export.jsonl}"
export OTEL_EXPANSION_GATEWAY_ENDPOINT="${OTEL_EXPANSION_GATEWAY_ENDPOINT:-http://127.0.0.1:4328}"
export OTEL_EXPANSION_GATEWAY_STORAGE="${OTEL_EXPANSION_GATEWAY_STORAGE:-$scratch/gateway-storage}"
export OTEL_EXPANSION_CLICKHOUSE_ENDPOINT="${OTEL_EXPANSION_CLICKHOUSE_ENDPOINT:-tcp://127.0.0.1:9000}"
export OTEL_EXPANSION_CLICKHOUSE_PASSWORD="${OTEL_EXPANSION_CLICKHOUSE_PASSWORD:-validate-only}"

failed=0
shopt -s nullglob
for config in "$here"/*.yaml; do
  name="$(basename "$config")"
  [ "$name" = "manifest.yaml" ] && continue
  if output="$("$bin" validate --config "$config" 2>&1)"; then
    echo "ok   $name"
  else
    echo "FAIL $name: $(printf '%s' "$output" | tr '\n' ' ')"
    failed=1
  fi
done
exit "$failed"
