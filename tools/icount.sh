#!/usr/bin/env bash
# User-space instructions per request of moongate (MODE=keyless, token, hook) and of the nginx
# peers of ../shared/bench (nginx-plain, nginx-lua), each under valgrind's callgrind with the same
# upstream, Redis sessions and client. Unlike req/s on a shared VM, the counts repeat to within
# about 1% from run to run, so they show what a change to the request path is worth. Kernel time
# (about half of a proxied request here) is not counted.
#   tools/icount.sh [N]          N requests per target after a warm-up (default 2000)
#   TARGETS="token hook" tools/icount.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
TARGETS=${TARGETS:-nginx-plain nginx-lua keyless token hook}
CONF=${HARNESS:-$PWD/../shared/bench}/conf
BIN=${BIN:-$PWD/target/release/moongate}
for tool in valgrind callgrind_control nginx redis-server python3; do
  command -v "$tool" >/dev/null || { echo "icount needs $tool" >&2; exit 1; }
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TMP=$(mktemp -d)
cleanup() { pkill -P $$ 2>/dev/null || true; pkill -f "$TMP" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
RP=$(free_port) UP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" >/dev/null &
for _ in $(seq 50); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$RP" SET apikey-bench-token '{"expires":0,"access_rights":{}}' >/dev/null
nginx_dir() {  # name conf port -> a prefix directory with nginx.conf rendered from the harness
  mkdir -p "$TMP/$1/logs" "$TMP/$1/tmp"
  cp "$CONF/common.conf" "$CONF/auth.lua" "$TMP/$1/"
  sed -e "s|@UP_PORT@|$UP|g; s|@PORT@|$3|g; s|@REDIS_PORT@|$RP|g; s|@CONF@|$TMP/$1|g" "$CONF/$2" >"$TMP/$1/nginx.conf"
}
nginx_dir upstream upstream.conf "$UP"
nginx -p "$TMP/upstream/" -c nginx.conf -e logs/error.log -g 'daemon off;' &
cat >"$TMP/client.py" <<'PY'
import http.client, sys, threading
port, n, conns = int(sys.argv[1]), int(sys.argv[2]), 8
def work(k):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(k):
        c.request("GET", "/", headers={"Authorization": "bench-token"})
        r = c.getresponse(); r.read()
        if r.status != 200: sys.exit(f"status {r.status}")
threads = [threading.Thread(target=work, args=(n // conns,)) for _ in range(conns)]
[t.start() for t in threads]; [t.join() for t in threads]
PY
printf '%-12s %12s\n' target 'instr/req'
for t in $TARGETS; do
  port=$(free_port) out="$TMP/cg-$t.out"
  vg=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$out")
  case $t in
    nginx-*) nginx_dir "$t" "$t.conf" "$port"
             "${vg[@]}" nginx -p "$TMP/$t/" -c nginx.conf -e logs/error.log -g 'daemon off; master_process off;' 2>/dev/null & ;;
    *) printf '#!/bin/sh\nexec %s %s "$@"\n' "${vg[*]}" "$BIN" >"$TMP/vg.sh"; chmod +x "$TMP/vg.sh"
       UPSTREAM_URL=http://127.0.0.1:$UP REDIS_URL=redis://127.0.0.1:$RP GATEWAY_PORT=$port MODE=$t BIN=$TMP/vg.sh \
         bench/gateway.sh >/dev/null 2>&1 & ;;
  esac
  pid=$!
  for _ in $(seq 150); do curl -s -o /dev/null -H 'Authorization: bench-token' "127.0.0.1:$port/" && break; sleep 0.2; done
  vpid=$(pgrep -f -- "--callgrind-out-file=$out" | head -1)
  python3 "$TMP/client.py" "$port" 400
  callgrind_control -i on "$vpid" >/dev/null 2>&1
  python3 "$TMP/client.py" "$port" "$N"
  callgrind_control -d "$vpid" >/dev/null 2>&1
  sleep 0.5
  total=$(cat "$out"* 2>/dev/null | awk '/^totals:/ {s += $2} END {print s + 0}')
  printf '%-12s %12d\n' "$t" $((total / N))
  kill "$pid" 2>/dev/null || true; pkill -f "$TMP/vg.sh" 2>/dev/null || true; pkill -f "valgrind.*$TMP" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
