#!/usr/bin/env bash
# The tests start real redis-server processes. Install it when missing (Debian, as root), or say
# in one line what to install.
set -euo pipefail
command -v redis-server >/dev/null 2>&1 && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "redis-server is missing: installing it with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  command -v redis-server >/dev/null 2>&1 && exit 0
fi
echo "the tests need redis-server: install it (Debian/Ubuntu: sudo apt-get install -y redis-server)" >&2
exit 1
