#!/usr/bin/env bash
# The --gateway-cmd of ../shared/bench/run.sh: moongate on UPSTREAM_URL, REDIS_URL and GATEWAY_PORT
# (from the harness), in one of three configurations (MODE):
#   token    (a) token auth by the gateway on Authorization against the harness' Redis sessions
#   hook     (b) the same check in a Lua pre hook (bench/auth.lua), then token auth on its header
#   keyless  a keyless API: plain proxying
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/moongate}
MODE=${MODE:-token}
D=$(mktemp -d); mkdir -p "$D/apis" "$D/scripts"
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$D"' EXIT
trap 'exit 0' TERM INT
cat >"$D/gateway.yaml" <<YAML
listen: "127.0.0.1:$GATEWAY_PORT"
workers: ${WORKERS:-1}
admin: { listen: "127.0.0.1:0" }
storage: { backend: redis, redis_url: "$REDIS_URL" }
apis_dir: apis
scripts_dir: scripts
hash_keys: false          # the harness stores apikey-<token>
watch: { enabled: false }
log: { level: warn, access_log: false }   # the nginx peers log nothing either
YAML
case $MODE in
  token) printf 'api_id: bench\nproxy: { listen_path: /, target_url: "%s" }\nglobal_headers: { x-internal-authorization: authenticated }\n' "$UPSTREAM_URL" ;;
  hook) cp "$ROOT/bench/auth.lua" "$D/scripts/auth.lua"
        printf 'api_id: bench\nauth: { auth_header_name: x-internal-authorization }\nproxy: { listen_path: /, target_url: "%s" }\ncustom_middleware: { pre: [ { name: benchAuth, path: auth.lua } ] }\n' "$UPSTREAM_URL" ;;
  keyless) printf 'api_id: bench\nuse_keyless: true\nproxy: { listen_path: /, target_url: "%s" }\n' "$UPSTREAM_URL" ;;
  *) echo "MODE must be token, hook or keyless" >&2; exit 2 ;;
esac >"$D/apis/bench.yaml"
"$BIN" run --config "$D/gateway.yaml" & PID=$!
# VmHWM is the peak RSS so far; the last sample before the harness stops us is the run's peak.
# The sampler runs in a session of its own: the harness reads /proc/<pid>/stat of every process in
# the gateway's process group and stops (status 2) when one of them, such as a short-lived awk,
# has exited in between.
if [ -n "${RSS_FILE:-}" ]; then
  setsid bash -c 'while kill -0 "$1" 2>/dev/null; do awk "/VmHWM/ {print \$2}" "/proc/$1/status" >"$2.new" 2>/dev/null && mv "$2.new" "$2"; sleep 1; done' _ "$PID" "$RSS_FILE" &
fi
wait "$PID"
