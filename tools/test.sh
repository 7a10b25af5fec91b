#!/usr/bin/env bash
# `make test`: every test of the workspace, then one closing line with the totals.
set -uo pipefail
cd "$(dirname "$0")/.."
tools/ensure-redis.sh || exit 1
log=$(mktemp); trap 'rm -f "$log"' EXIT
cargo test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^test result:/ {p += $4; f += $6} END {printf "tests: %d passed, %d failed\n", p, f}' "$log"
exit "$status"
