#!/usr/bin/env bash
# Install Debian packages for the test setup, waiting for another apt/dpkg process to let go of its lock
# (unattended-upgrades, a parallel job) instead of failing at once, and showing apt's output on failure.
#   bash scripts/apt_install.sh [--no-update] PACKAGE...
# APT_LOCK_WAIT_S (default 600): how long to wait for the lock in all.
set -euo pipefail
update=1
if [ "${1:-}" = "--no-update" ]; then update=0; shift; fi
wait_s="${APT_LOCK_WAIT_S:-600}"
sudo_=()
if [ "$(id -u)" != 0 ]; then sudo_=(sudo); fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

apt_get() {
  # DPkg::Lock::Timeout makes apt (>= 1.9.11) wait for the dpkg frontend lock itself; the loop also covers
  # the lists lock of `update` and older apt, which answer "Could not get lock" (exit 100) at once.
  local deadline=$(( $(date +%s) + wait_s ))
  while true; do
    if "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$wait_s" "$@" >"$log" 2>&1; then
      return 0
    fi
    if grep -qiE "could not get lock|unable to acquire|is another process using it" "$log" \
        && [ "$(date +%s)" -lt "$deadline" ]; then
      echo "== waiting for the apt lock (another apt/dpkg process holds it)" >&2
      sleep 2
      continue
    fi
    echo "== apt-get $* failed:" >&2
    cat "$log" >&2
    return 1
  done
}

if [ "$update" = 1 ]; then apt_get update -qq; fi
apt_get install -y -qq "$@"
