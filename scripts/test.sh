#!/usr/bin/env bash
# Runs the whole test suite: unit and loopback integration tests with the real binary, simulator,
# Redis and the official SDKs; the fault-injection suite (tests/faults.rs) on the release binary;
# then every fuzz target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The fault-injection and cluster suites run the release build (tests pick it when it is the newest
# build), so the debug test build comes first and the release build last.
cargo test --quiet --workspace --lib --bins --tests --no-run
cargo build --quiet --release --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --lib --bins --tests "$@"
else
  cargo test --workspace --lib --bins --tests "$@"
fi
scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
