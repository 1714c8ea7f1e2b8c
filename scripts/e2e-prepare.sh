#!/bin/sh
# Prepare a Debian 12 machine (root) for the systemd-nspawn e2e suite (tests/e2e):
# install the host tools, then build the machine-wide caches once (idempotent; each step is
# skipped when its artifact exists):
#   $RECONCILER_E2E_CACHE (default /var/cache/reconciler-e2e)/rootfs-bookworm-<key>.tar.zst
#   $RECONCILER_E2E_CACHE/gateway-clawdbot-<version>/     (only with --gateway: npm, ~630 MB)
# Usage: scripts/e2e-prepare.sh [--gateway]      (run from anywhere; needs `make venv` first)
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "e2e-prepare: must run as root" >&2; exit 1; fi
missing=""
for t in debootstrap systemd-nspawn zstd; do command -v "$t" >/dev/null || missing=1; done
if [ -n "$missing" ]; then
  apt-get update -q
  apt-get install -y -q debootstrap systemd-container zstd
fi
.venv/bin/python -m tests.e2e.images rootfs
if [ "${1:-}" = "--gateway" ]; then
  command -v npm >/dev/null || apt-get install -y -q npm
  .venv/bin/python -m tests.e2e.images gateway
fi
.venv/bin/python -m tests.e2e.images info
