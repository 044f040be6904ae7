#!/usr/bin/env bash
# Runs the whole test suite: unit and loopback integration tests with the real binary, simulator,
# Redis and the official SDKs; the fault-injection suite (tests/faults.rs) on the release binary;
# then every fuzz target for a bounded time, and the instruction-count check.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The fault-injection and cluster suites run the release build (tests pick it when it is the newest
# build), so the debug test build comes first and the release build last. The instruction check
# also counts the bare Pingora example (the floor).
cargo test --quiet --workspace --lib --bins --tests --no-run
cargo build --quiet --release --workspace --bins --examples
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --lib --bins --tests "$@"
else
  cargo test --workspace --lib --bins --tests "$@"
fi
scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
# Instructions per request on the main paths (callgrind, release build) may not grow by more than
# 10% over the committed baseline (benches/instructions.baseline).
cargo bench --quiet --bench versus_nginx -- --section instructions --check benches/instructions.baseline
