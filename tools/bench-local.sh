#!/usr/bin/env bash
# Local throughput check: the release binary with one worker on a Redis-backed config, the echo
# upstream, and wrk, all on this machine. Prints req/s for a keyless API, a token-auth API, a
# trivial Lua pre hook and a pre hook doing TykGetKeyData against Redis, and the gateway's peak RSS.
# The peer comparison (nginx, nginx + Lua, HAProxy) is ../shared/bench.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/moongate
DURATION=${DURATION:-10} CONNS=${CONNS:-64} WORKERS=${WORKERS:-1}
command -v wrk >/dev/null || { echo "bench needs wrk (apt-get install -y wrk)" >&2; exit 1; }
tools/ensure-redis.sh
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TMP=$(mktemp -d); PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"' EXIT
RP=$(free_port) UP=$(free_port) GP=$(free_port) AP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" >/dev/null & PIDS+=($!)
"$BIN" echo --listen "127.0.0.1:$UP" 2>/dev/null & PIDS+=($!)
mkdir -p "$TMP/apis" "$TMP/scripts"
cat >"$TMP/scripts/trivial.lua" <<'LUA'
return function(request, session, config)
  request.SetHeaders["X-Hook"] = "1"
  return request
end
LUA
cat >"$TMP/scripts/getkey.lua" <<'LUA'
getKey = TykJS.TykMiddleware.NewMiddleware({})
getKey:NewProcessRequest(function(request, session, config)
  local data = json.decode(TykGetKeyData(request.Headers["Authorization"][1], config.APIID))
  if data.status == "error" or (data.expires > 0 and data.expires < os.time()) then
    request.ReturnOverrides.ResponseCode = 403
    request.ReturnOverrides.ResponseError = "Access to this API has been disallowed"
  end
  return getKey:ReturnData(request, {})
end)
LUA
cat >"$TMP/gateway.yaml" <<YAML
listen: "127.0.0.1:$GP"
workers: $WORKERS
admin: { listen: "127.0.0.1:$AP", secret: bench }
storage: { backend: redis, redis_url: "redis://127.0.0.1:$RP/0" }
apis_dir: apis
scripts_dir: scripts
log: { level: warn, access_log: false }
YAML
printf 'api_id: open\nuse_keyless: true\nproxy: { listen_path: /open/, target_url: "http://127.0.0.1:%s", strip_listen_path: true }\n' "$UP" >"$TMP/apis/open.yaml"
printf 'api_id: keyed\nproxy: { listen_path: /keyed/, target_url: "http://127.0.0.1:%s", strip_listen_path: true }\n' "$UP" >"$TMP/apis/keyed.yaml"
printf 'api_id: trivial\nuse_keyless: true\nproxy: { listen_path: /trivial/, target_url: "http://127.0.0.1:%s", strip_listen_path: true }\ncustom_middleware: { pre: [ { name: trivial, path: trivial.lua } ] }\n' "$UP" >"$TMP/apis/trivial.yaml"
printf 'api_id: getkey\nuse_keyless: true\nproxy: { listen_path: /getkey/, target_url: "http://127.0.0.1:%s", strip_listen_path: true }\ncustom_middleware: { pre: [ { name: getKey, path: getkey.lua } ] }\n' "$UP" >"$TMP/apis/getkey.yaml"
"$BIN" run --config "$TMP/gateway.yaml" & GW=$!; PIDS+=($GW)
for _ in $(seq 100); do curl -s "127.0.0.1:$AP/hello" >/dev/null && break; sleep 0.1; done
KEY=$(curl -s -H 'x-tyk-authorization: bench' "127.0.0.1:$AP/tyk/keys/create" -d '{"expires":0}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
peak() { awk '/VmHWM/ {print $2/1024 " MB"}' "/proc/$GW/status"; }
run() {  # name path [header]
  local out; out=$(wrk --latency -t1 -c"$CONNS" -d"${DURATION}s" ${3:+-H "$3"} "http://127.0.0.1:$GP$2")
  printf '%-10s %10s req/s  p50 %s  non-2xx %s\n' "$1" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '/50%/ {print $2}' <<<"$out")" "$( (grep -o 'Non-2xx or 3xx responses: [0-9]*' <<<"$out" || echo ': 0') | awk -F': ' '{print $2}')"
}
echo "moongate $($BIN version | cut -d' ' -f2), $WORKERS worker(s), wrk -t1 -c$CONNS -d${DURATION}s, $(nproc) cores"
run keyless /open/
run token /keyed/ "Authorization: $KEY"
run pre-hook /trivial/
run getkey-hook /getkey/ "Authorization: $KEY"
echo "peak RSS $(peak)"
