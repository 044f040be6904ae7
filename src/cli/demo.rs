//! `dify-gateway demo`: starts the bundled Dify simulator on the config's upstream address, then the
//! gateway, and prints a curl line with a fresh tenant token. Needs no Dify installed.

use super::run::{load_or_report, serve};
use super::token::token_for;
use crate::config::{Purpose, Settings, Source};
use crate::secret::Secret;
use crate::store::{Backend, StoreSettings};
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
    let mut settings = match load_or_report(&source) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let admin_token = match with_store_and_admin(&mut settings) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(sim_addr) = sim_addr(&settings) else {
        eprintln!("demo: upstream.url must be a plain http:// loopback address for the simulator");
        return ExitCode::from(64);
    };
    if let Err(e) = start_simulator(sim_addr, sim_config(&settings)) {
        eprintln!("demo: cannot start the Dify simulator on {sim_addr}: {e}");
        return ExitCode::FAILURE;
    }
    let banner = match banner(&settings, &admin_token) {
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

/// The simulator's key of the app the banner's example gives a tenant created at runtime.
const STORE_DEMO_KEY: &str = "app-demo-initech-writer";

/// Without `[store]` and `admin.token` in the config, the demo runs with an SQLite store in a fresh
/// temporary folder and a random admin token, so that the admin API can be tried at once. Returns
/// the admin token.
fn with_store_and_admin(s: &mut Settings) -> Result<String, String> {
    use base64::Engine;
    let random = |n: usize| -> Result<Vec<u8>, String> {
        let mut b = vec![0u8; n];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
            .map_err(|_| "no randomness")?;
        Ok(b)
    };
    if s.store.is_none() {
        let dir = std::env::temp_dir().join(format!("dify-gateway-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let key = base64::engine::general_purpose::STANDARD.encode(random(32)?);
        s.store = Some(StoreSettings {
            url: Secret::new(format!("sqlite://{}", dir.join("gateway.db").display())),
            backend: Backend::Sqlite,
            encryption_key: Secret::new(key),
        });
    }
    if s.admin_token.is_none() {
        s.admin_token = Some(Secret::new(hex::encode(random(16)?)));
    }
    Ok(s.admin_token
        .as_ref()
        .map(|t| t.expose().to_string())
        .unwrap_or_default())
}

fn sim_addr(s: &Settings) -> Option<SocketAddr> {
    let o = s.upstream.origin();
    let ip: std::net::IpAddr = o.host.parse().ok()?;
    (!o.tls && ip.is_loopback() && o.base_path.is_empty()).then(|| SocketAddr::new(ip, o.port))
}

/// One simulated Dify app per distinct configured key.
fn sim_config(s: &Settings) -> SimConfig {
    let mut apps: Vec<SimApp> = Vec::new();
    let declared = s
        .declared
        .apps
        .iter()
        .map(|a| (a.api_key.expose(), a.name.as_str()));
    for (key, name) in declared.chain([(STORE_DEMO_KEY, "writer")]) {
        if !apps.iter().any(|a| a.key == key) {
            apps.push(SimApp {
                key: key.to_string(),
                name: name.to_string(),
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

fn banner(s: &Settings, admin_token: &str) -> Result<String, String> {
    let mut tenants: Vec<_> = s.declared.tenants.iter().collect();
    tenants.sort_by(|a, b| a.id.cmp(&b.id));
    let tenant = tenants.first().ok_or("no tenant configured")?;
    let app = s
        .declared
        .apps
        .iter()
        .find(|a| a.tenant == tenant.id)
        .ok_or("tenant has no app")?;
    let token = token_for(s, &tenant.id, Some(&app.name), Duration::from_secs(3600))?;
    let exe = std::env::current_exe().map_or_else(|_| "dify-gateway".into(), |p| p.display().to_string());
    let base = format!("http://{}", s.server.listen);
    Ok(format!(
        "\ndify-gateway demo is up: gateway {base}, admin http://{admin}, Dify simulator {up}\n\
         tenant `{t}`, app `{a}`; the token below is valid for 1 hour.\n\n\
         curl -N {base}/v1/completion-messages \\\n  -H 'Authorization: Bearer {token}' \\\n  \
         -H 'Content-Type: application/json' \\\n  \
         -d '{{\"inputs\": {{\"topic\": \"green tea\"}}, \"response_mode\": \"streaming\", \"user\": \"alice\"}}'\n\n\
         Tenants and keys at runtime (store: {store}): onboard a tenant and give it a gateway API key:\n\n\
         export GW_ADMIN_URL=http://{admin} GW_ADMIN_TOKEN={admin_token}\n\
         {exe} tenants create initech\n\
         DIFY_KEY={STORE_DEMO_KEY} {exe} tenants set-app initech writer --api-key-env DIFY_KEY\n\
         {exe} keys create initech --app writer      # prints a dgw- key: use it where the token goes\n",
        admin = s.server.admin_listen,
        store = s
            .store
            .as_ref()
            .map_or("none", |_| "SQLite in a temporary folder"),
        up = s.upstream.origin().authority,
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
