# Moongate's front door. `make run` starts the gateway on the example config with the in-memory
# store; `make test` runs every test (installing redis-server first when it is missing).
CONFIG ?= config/gateway.yaml
CARGO ?= cargo

.PHONY: run echo test lint fmt validate bench icount build release

run:
	$(CARGO) run --bin moongate -- run --config $(CONFIG)

# The upstream of the example APIs: an echo server on 127.0.0.1:9000.
echo:
	$(CARGO) run --bin moongate -- echo --listen 127.0.0.1:9000

validate:
	$(CARGO) run --bin moongate -- validate --config $(CONFIG)

test:
	tools/test.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

build:
	$(CARGO) build

release:
	$(CARGO) build --release --bin moongate

# Peer benchmark: moongate beside nginx, nginx + Lua and HAProxy in one run (../shared/bench).
bench: release
	tools/bench.sh

# Instructions per request (callgrind) of moongate and the nginx peers: repeatable on a busy host.
icount: release
	tools/icount.sh
