#!/usr/bin/env bash
# `make bench`: moongate beside its peers in ../shared/bench/run.sh, one harness run per
# configuration: (a) token auth, (b) the check in a Lua pre hook, and keyless proxying. Prints the
# harness' tables and moongate's peak RSS per run. DURATION, ROUNDS and WORKERS pass through;
# SRV_CPU=0,1 gives the servers both cores (the load generator then shares one).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${HARNESS:-$ROOT/../shared/bench}
[ -x "$HARNESS/run.sh" ] || { echo "bench: no harness at $HARNESS (set HARNESS)" >&2; exit 1; }
command -v wrk >/dev/null && command -v nginx >/dev/null || bash "$HARNESS/setup.sh"
DURATION=${DURATION:-10} ROUNDS=${ROUNDS:-2}
for mode in ${MODES:-token hook keyless}; do
  case $mode in keyless) peers=nginx-plain ;; *) peers=nginx-plain,nginx-lua ;; esac
  echo "== moongate MODE=$mode (workers ${WORKERS:-1}) against $peers"
  rss=$(mktemp)
  # A harness run that stops partway (it did, with status 2, while bench/gateway.sh's RSS sampler
  # shared the gateway's process group) printed no table, so it is simply run again.
  for attempt in 1 2 3; do
    if MODE=$mode "$HARNESS/run.sh" --target "$peers" --duration "$DURATION" --rounds "$ROUNDS" \
      --gateway-cmd "MODE=$mode WORKERS=${WORKERS:-1} RSS_FILE=$rss $ROOT/bench/gateway.sh"; then
      break
    fi
    echo "bench: harness run $attempt for MODE=$mode did not finish; running it again" >&2
  done
  echo "moongate peak RSS: $(cat "$rss" 2>/dev/null || echo '?') kB"; rm -f "$rss"
done
