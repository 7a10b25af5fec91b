#!/usr/bin/env bash
# Memory over many reloads: the release binary on the example APIs and hooks, N reloads through
# the admin API (each builds a whole new generation and, on the next request, new Lua states on
# every worker), with requests in between. Prints RSS as it goes; it should stay flat.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}
BIN=target/release/moongate
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TMP=$(mktemp -d); PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"' EXIT
UP=$(free_port) GP=$(free_port) AP=$(free_port)
"$BIN" echo --listen "127.0.0.1:$UP" 2>/dev/null & PIDS+=($!)
cp -r config/apis "$TMP/apis"; cp -r scripts "$TMP/scripts"
sed -i "s/127.0.0.1:9000/127.0.0.1:$UP/g" "$TMP"/apis/*.yaml
cat >"$TMP/gateway.yaml" <<YAML
listen: "127.0.0.1:$GP"
workers: 2
admin: { listen: "127.0.0.1:$AP", secret: soak }
apis_dir: apis
scripts_dir: scripts
watch: { enabled: false }
log: { level: warn, access_log: false }
YAML
"$BIN" run --config "$TMP/gateway.yaml" & GW=$!; PIDS+=($GW)
for _ in $(seq 100); do curl -s "127.0.0.1:$AP/hello" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$GW/status"; }
hit() { for p in open/x backend-auth/x; do curl -s -o /dev/null -H 'Authorization: soak' "127.0.0.1:$GP/$p"; curl -s -o /dev/null -H 'Authorization: soak' "127.0.0.1:$GP/$p"; done; }
for _ in $(seq 20); do hit; done
echo "reloads 0: RSS $(rss) kB"
start=$(date +%s)
for i in $(seq "$N"); do
  curl -sf -H 'x-tyk-authorization: soak' "127.0.0.1:$AP/tyk/reload?block=true" >/dev/null
  hit
  (( i % 200 == 0 )) && echo "reloads $i: RSS $(rss) kB"
done
echo "generation now: $(curl -s -H 'x-tyk-authorization: soak' "127.0.0.1:$AP/tyk/reload/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])'), $(( $(date +%s) - start )) s"
