#!/usr/bin/env bash
# Installs what building and testing dify-gateway needs and a fresh machine may lack.
# Idempotent: does nothing when everything is there. Run as root (or with sudo available).
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)          # Pingora's zlib-ng build runs cmake
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)  # the cache tests run a real Redis
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)      # the Redis Cluster tests join nodes with it
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)          # instructions per request, checked against a baseline
# The store tests start a private PostgreSQL cluster (initdb in a temp dir, as the `postgres` user).
# No system cluster is wanted: tell postgresql-common not to create (and start) one.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confold "${need[@]}" >/dev/null
fi

# promtool checks the alert rules and the metrics exposition. It ships in Debian's `prometheus`
# package; only the binary is unpacked (no Prometheus service is installed or started).
if ! command -v promtool >/dev/null 2>&1; then
  echo "setup: unpacking promtool from Debian's prometheus package" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 || { $SUDO apt-get update -qq && apt-get download prometheus >/dev/null; }; })
  $SUDO mkdir -p /opt/promtool
  $SUDO dpkg -x "$tmp"/prometheus_*.deb /opt/promtool
  $SUDO ln -sf /opt/promtool/usr/bin/promtool /usr/local/bin/promtool
  rm -rf "$tmp"
fi

# The official Dify SDKs that tests/sdk.rs drives through the gateway (PyPI and npm), kept under target/.
sdk="$(cd "$(dirname "$0")/.." && pwd)/target/sdk"
if [ ! -x "$sdk/venv/bin/python" ] || ! "$sdk/venv/bin/python" -c 'import dify_client' 2>/dev/null; then
  echo "setup: installing the Python SDK (dify-client) into target/sdk/venv" >&2
  python3 -m venv "$sdk/venv"
  "$sdk/venv/bin/pip" install --quiet --disable-pip-version-check dify-client==0.1.10
fi
if [ ! -f "$sdk/node/node_modules/dify-client/package.json" ]; then
  echo "setup: installing the Node SDK (dify-client) into target/sdk/node" >&2
  mkdir -p "$sdk/node"
  (cd "$sdk/node" && npm install --silent --no-audit --no-fund dify-client@2.3.2 >/dev/null)
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo (Rust 1.88 or newer) is required" >&2
  exit 1
fi
