#!/usr/bin/env bash
# Installs what building and testing dify-gateway needs and a fresh machine may lack.
# Idempotent: does nothing when everything is there. Run as root (or with sudo available).
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)          # Pingora's zlib-ng build runs cmake
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)  # the cache tests run a real Redis

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
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

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo (Rust 1.88 or newer) is required" >&2
  exit 1
fi
