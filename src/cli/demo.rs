//! `dify-gateway demo`: starts the bundled Dify simulator on the config's upstream address, then the
//! gateway, and prints a curl line with a fresh tenant token. Needs no Dify installed.

use super::run::{load_or_report, serve};
use super::token::token_for;
use crate::config::{Purpose, Settings, Source};
use dify_sim::{SimApp, SimConfig, Simulator};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Runs the demo with the config at `path`.
pub fn run(path: &Path) -> ExitCode {
    let source = Source {
        path: path.to_path_buf(),
        purpose: Purpose::Demo,
    };
    let settings = match load_or_report(&source) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(sim_addr) = sim_addr(&settings) else {
        eprintln!("demo: upstream.url must be a plain http:// loopback address for the simulator");
        return ExitCode::from(64);
    };
    if let Err(e) = start_simulator(sim_addr, sim_config(&settings)) {
        eprintln!("demo: cannot start the Dify simulator on {sim_addr}: {e}");
        return ExitCode::FAILURE;
    }
    let banner = match banner(&settings) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listen = settings.server.listen;
    std::thread::spawn(move || {
        if wait_for(listen, Duration::from_secs(30)) {
            println!("{banner}");
        }
    });
    serve(settings, source)
}

fn sim_addr(s: &Settings) -> Option<SocketAddr> {
    let ip: std::net::IpAddr = s.upstream.host.parse().ok()?;
    (!s.upstream.tls && ip.is_loopback() && s.upstream.base_path.is_empty())
        .then(|| SocketAddr::new(ip, s.upstream.port))
}

/// One simulated Dify app per distinct configured key.
fn sim_config(s: &Settings) -> SimConfig {
    let mut apps: Vec<SimApp> = Vec::new();
    let mut tenants: Vec<_> = s.snapshot.tenants.values().collect();
    tenants.sort_by(|a, b| a.id.cmp(&b.id));
    for app in tenants.iter().flat_map(|t| t.apps.iter()) {
        let key = app.api_key.expose().to_string();
        if !apps.iter().any(|a| a.key == key) {
            apps.push(SimApp {
                key,
                name: app.name.clone(),
                tts_autoplay: false,
            });
        }
    }
    SimConfig {
        apps,
        ..SimConfig::default()
    }
}

fn start_simulator(addr: SocketAddr, cfg: SimConfig) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        rt.block_on(async move {
            match Simulator::start(addr, cfg).await {
                Ok(sim) => {
                    let _ = tx.send(Ok(()));
                    std::future::pending::<()>().await;
                    drop(sim);
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        });
    });
    rx.recv().map_err(|e| e.to_string())?
}

fn banner(s: &Settings) -> Result<String, String> {
    let mut tenants: Vec<_> = s.snapshot.tenants.values().collect();
    tenants.sort_by(|a, b| a.id.cmp(&b.id));
    let tenant = tenants.first().ok_or("no tenant configured")?;
    let app = tenant.apps.first().ok_or("tenant has no app")?;
    let token = token_for(s, &tenant.id, Some(&app.name), Duration::from_secs(3600))?;
    let base = format!("http://{}", s.server.listen);
    Ok(format!(
        "\ndify-gateway demo is up: gateway {base}, admin http://{admin}, Dify simulator {up}\n\
         tenant `{t}`, app `{a}`; the token below is valid for 1 hour.\n\n\
         curl -N {base}/v1/completion-messages \\\n  -H 'Authorization: Bearer {token}' \\\n  \
         -H 'Content-Type: application/json' \\\n  \
         -d '{{\"inputs\": {{\"topic\": \"green tea\"}}, \"response_mode\": \"streaming\", \"user\": \"alice\"}}'\n",
        admin = s.server.admin_listen,
        up = s.upstream.authority,
        t = tenant.id,
        a = app.name,
    ))
}

fn wait_for(addr: SocketAddr, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
