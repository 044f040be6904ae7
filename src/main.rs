//! Entry point: parses the command line and hands over to `cli::run`.

use clap::Parser;
use std::process::ExitCode;

/// jemalloc: about 10% fewer instructions per request than glibc's malloc, and memory freed after a
/// burst of streams goes back to the system (docs/benchmarks.md, "Performance against nginx").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    dify_gateway::cli::run(dify_gateway::cli::Cli::parse())
}
