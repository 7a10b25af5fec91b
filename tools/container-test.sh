#!/usr/bin/env bash
# The container image, tested for real with podman: build the runtime stage of the Dockerfile
# around a static binary, run it read-only and non-root with config and scripts mounted read-only,
# call an API and /hello through it, edit a mounted Lua script and see the change live, then
# `podman stop` it and expect exit code 0 after draining. Installs podman and runc when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc >/dev/null
fi
export CONTAINERS_CONF="$ROOT/.ci/containers.conf"
TARGET=x86_64-unknown-linux-gnu
# Exactly the Dockerfile's build: static, stripped.
RUSTFLAGS='-C target-feature=+crt-static' CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols \
  cargo build --release --locked --bin moongate --target "$TARGET"
BIN=target/$TARGET/release/moongate
file "$BIN" 2>/dev/null | grep -q 'static' || ldd "$BIN" 2>&1 | grep -q 'not a dynamic' || { echo "container-test: $BIN is not static" >&2; exit 1; }

NAME=moongate-ci-$$ IMAGE=localhost/moongate:ci-$$
CFG=$(mktemp -d); chmod 755 "$CFG"
cleanup() {
  podman rm -f "$NAME" >/dev/null 2>&1 || true
  podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
  [ -n "${ECHO_PID:-}" ] && kill "$ECHO_PID" 2>/dev/null || true
  rm -rf "$CFG"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port) GP=$(free_port) AP=$(free_port)

podman build -q --format docker --build-arg BINARY=prebuilt --target runtime -t "$IMAGE" . >/dev/null
echo "container-test: image $(podman image inspect -f '{{.Size}}' "$IMAGE") bytes"

# The example configuration, pointed at an upstream on this machine.
cp -r config "$CFG/config"; cp -r scripts "$CFG/scripts"
sed -i "s/127.0.0.1:9000/127.0.0.1:$UP/g" "$CFG"/config/apis/*.yaml
chmod -R a+rX "$CFG"
"$BIN" echo --listen "127.0.0.1:$UP" 2>/dev/null & ECHO_PID=$!

podman run -d --name "$NAME" --log-level error --read-only --cap-drop=all --security-opt no-new-privileges --network host \
  -v "$CFG/config:/config:ro" -v "$CFG/scripts:/scripts:ro" \
  -e MOONGATE_LISTEN="127.0.0.1:$GP" -e MOONGATE_ADMIN_LISTEN="127.0.0.1:$AP" -e MOONGATE_ADMIN_SECRET=ci-secret \
  "$IMAGE" >/dev/null

fail() { echo "container-test: $*" >&2; podman logs "$NAME" 2>&1 | tail -20 >&2; exit 1; }
for _ in $(seq 100); do curl -fsS -m 2 "http://127.0.0.1:$AP/hello" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -m 2 "http://127.0.0.1:$AP/hello" | grep -q '"status":"pass"' || fail "/hello did not pass"
user=$(podman top "$NAME" user | tail -1 | tr -d ' ')
[ "$user" = 65532 ] || fail "runs as '$user', not 65532"
body=$(curl -fsS -m 2 -D "$CFG/headers" "http://127.0.0.1:$GP/open/ping") || fail "API call failed"
grep -q '"path":"/ping"' <<<"$body" || fail "unexpected body: $body"
grep -qi '^x-response-hook: echo-open' "$CFG/headers" || fail "response hook did not run"
podman healthcheck run "$NAME" >/dev/null || fail "HEALTHCHECK failed"

# A live edit of a mounted script.
sed 's/response.SetHeaders\["X-Response-Hook"\] = config.APIID/response.SetHeaders["X-Response-Hook"] = "edited"/' \
  "$CFG/scripts/response_stamp.lua" >"$CFG/scripts/.response_stamp.lua.tmp"
mv "$CFG/scripts/.response_stamp.lua.tmp" "$CFG/scripts/response_stamp.lua"
for _ in $(seq 50); do
  curl -fsS -m 2 -D - -o /dev/null "http://127.0.0.1:$GP/open/ping" | grep -qi '^x-response-hook: edited' && break
  sleep 0.1
done
curl -fsS -m 2 -D - -o /dev/null "http://127.0.0.1:$GP/open/ping" | grep -qi '^x-response-hook: edited' || fail "the script edit did not apply"

# Drain and stop: SIGTERM to PID 1, exit code 0.
(curl -fsS -m 5 -o "$CFG/slow" "http://127.0.0.1:$GP/open/slow?echo_delay_ms=700" && echo ok >"$CFG/slow.status") & SLOW=$!
sleep 0.2
podman stop -t 10 "$NAME" >/dev/null
wait "$SLOW" || true
code=$(podman inspect -f '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || fail "exit code $code after podman stop"
[ -f "$CFG/slow.status" ] || fail "the in-flight request did not complete during the drain"
echo "container-test: passed (read-only, uid 65532, /hello, API + hooks, healthcheck, live script edit, drain, exit 0)"
