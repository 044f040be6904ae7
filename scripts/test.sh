#!/usr/bin/env bash
# Runs the whole test suite (unit and loopback integration tests with the real binary and simulator).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --lib --bins --tests "$@"
else
  exec cargo test --workspace --lib --bins --tests "$@"
fi
