#!/usr/bin/env bash
# Build the otel-expansion collector from manifest.yaml with ocb, cached under ~/.cache keyed by the
# manifest's hash and the Go version. Prints the binary's path on stdout (and nothing else). Concurrent
# calls (scripts/test.sh starts one in the background; the collector tests call it too) build once: the
# later ones wait on a lock, then find the binary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
manifest="$here/manifest.yaml"
ocb_version="0.161.0"
key="$( (cat "$manifest"; go version; echo "ocb $ocb_version") | sha256sum | cut -c1-16)"
cache="${OTEL_EXPANSION_COLLECTOR_CACHE:-$HOME/.cache/otel-expansion/collector}/$key"
bin="$cache/otelcol-expansion"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
exec 9>"$cache.lock"
flock 9  # another build of this key is running: wait for it, then use what it built
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
export GOBIN="$HOME/.cache/otel-expansion/ocb-$ocb_version"
if [ ! -x "$GOBIN/builder" ]; then
  echo "installing ocb $ocb_version into $GOBIN" >&2
  go install "go.opentelemetry.io/collector/cmd/builder@v$ocb_version" >&2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
sed "s#output_path: ./_build#output_path: $work/out#" "$manifest" > "$work/manifest.yaml"
echo "building collector (first build takes several minutes; cached at $cache)" >&2
"$GOBIN/builder" --config "$work/manifest.yaml" >&2
cp "$work/out/otelcol-expansion" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "$bin"
