#!/usr/bin/env bash
# Install the servers and browser the tests run for real, when they are missing.
set -euo pipefail
declare -A PACKAGE=([redis-server]=redis-server [redis-cli]=redis-tools [redis-sentinel]=redis-sentinel [memcached]=memcached [chromium]=chromium [openssl]=openssl)
missing=()
for binary in redis-server redis-cli redis-sentinel memcached chromium openssl; do
    command -v "$binary" >/dev/null 2>&1 || missing+=("${PACKAGE[$binary]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${missing[*]} with apt-get ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "The tests need ${missing[*]}. Install them with:" >&2
    echo "    sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
