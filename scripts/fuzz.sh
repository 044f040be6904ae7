#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 10 s each; `scripts/fuzz.sh 300` for longer).
# The targets compile only the gateway's pure modules (fuzz/src/lib.rs), with libFuzzer's coverage
# instrumentation on stable Rust, so the build takes about a minute. New corpus entries go to
# target/fuzz/corpus/; a crash leaves its input in target/fuzz/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4"
flags+=" -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table"
flags+=" -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
RUSTFLAGS="$flags" cargo build --quiet --release --manifest-path fuzz/Cargo.toml \
  --target "$triple" --target-dir target/fuzz
bin="target/fuzz/$triple/release"
for t in sse_parser multipart_scoper json_scoper jwt_header config router; do
  corpus="target/fuzz/corpus/$t"
  mkdir -p "$corpus"
  log="target/fuzz/$t.log"
  if ! "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="target/fuzz/$t-" "$corpus" "fuzz/seeds/$t" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $t failed; the input is in target/fuzz/$t-*" >&2
    exit 1
  fi
  echo "fuzz: $t ran $(sed -n 's/^stat::number_of_executed_units: *//p' "$log") inputs in ${seconds}s"
done
