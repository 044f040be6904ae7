//! `dify-sim` binary: runs the simulator on a fixed address until Ctrl-C.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dify_sim::{SimApp, SimConfig, Simulator};

#[derive(Parser, Debug)]
#[command(
    name = "dify-sim",
    about = "Simulator of Dify 1.14.1's completion-app Service API"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5001")]
    listen: SocketAddr,
    /// A completion app as KEY=NAME (repeatable).
    #[arg(long = "app", value_name = "KEY=NAME")]
    apps: Vec<String>,
    /// A completion app with TTS autoplay as KEY=NAME (repeatable).
    #[arg(long = "tts-app", value_name = "KEY=NAME")]
    tts_apps: Vec<String>,
    #[arg(long)]
    ping_interval_ms: Option<u64>,
    #[arg(long)]
    event_interval_ms: Option<u64>,
    #[arg(long)]
    events: Option<usize>,
    #[arg(long)]
    first_event_delay_ms: Option<u64>,
    #[arg(long)]
    error_after: Option<usize>,
    /// Per-app concurrent generation limit.
    #[arg(long)]
    concurrency_limit: Option<usize>,
    /// Answer the concurrency limit with 429 instead of 400.
    #[arg(long)]
    concurrency_limit_429: bool,
    /// Latency of info/parameters/site/meta (Dify reads them from its database).
    #[arg(long)]
    metadata_delay_ms: Option<u64>,
}

fn parse_app(spec: &str, tts_autoplay: bool) -> Result<SimApp, String> {
    let (key, name) = spec
        .split_once('=')
        .filter(|(k, n)| !k.is_empty() && !n.is_empty())
        .ok_or_else(|| format!("expected KEY=NAME, got {spec:?}"))?;
    Ok(SimApp {
        key: key.to_string(),
        name: name.to_string(),
        tts_autoplay,
    })
}

fn config(args: &Args) -> Result<SimConfig, String> {
    let mut cfg = SimConfig::default();
    let mut apps = Vec::new();
    for spec in &args.apps {
        apps.push(parse_app(spec, false)?);
    }
    for spec in &args.tts_apps {
        apps.push(parse_app(spec, true)?);
    }
    if !apps.is_empty() {
        cfg.apps = apps;
    }
    let ms = Duration::from_millis;
    cfg.ping_interval = args.ping_interval_ms.map_or(cfg.ping_interval, ms);
    cfg.event_interval = args.event_interval_ms.map_or(cfg.event_interval, ms);
    cfg.first_event_delay = args.first_event_delay_ms.map_or(cfg.first_event_delay, ms);
    cfg.events = args.events.unwrap_or(cfg.events);
    cfg.error_after = args.error_after.or(cfg.error_after);
    cfg.concurrency_limit = args.concurrency_limit;
    cfg.concurrency_limit_as_429 = args.concurrency_limit_429;
    cfg.metadata_delay = args.metadata_delay_ms.map_or(cfg.metadata_delay, ms);
    Ok(cfg)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match config(&args) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("dify-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let sim = match Simulator::start(args.listen, cfg).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("dify-sim: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!("dify-sim listening on {}", sim.base_url());
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown();
    ExitCode::SUCCESS
}
