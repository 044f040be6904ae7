//! Entry point: parses the command line and hands over to `cli::run`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    dify_gateway::cli::run(dify_gateway::cli::Cli::parse())
}
