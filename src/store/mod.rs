//! Tenants and keys at runtime (beside the request flow: written by the admin API, read into the
//! snapshot on every change): an SQLite file for one host, or PostgreSQL shared by many replicas,
//! chosen by `store.url`. The request path never touches the database: it reads the in-memory
//! snapshot. All database I/O runs on a runtime of the store's own that lives as long as the process.
//!
//! [`model`] holds the rows and changes, [`sql`] the statements, [`migrate`] the versioned schema,
//! [`vault`] the secrets at rest.

pub mod migrate;
pub mod model;
pub mod sql;
pub mod vault;
mod watch;

use crate::secret::Secret;
use model::{Applied, AuditEntry, Change, StoreData};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use vault::{Undecryptable, Vault};

/// Longest wait for the database on any one operation.
const DB_TIMEOUT: Duration = Duration::from_secs(5);

/// The database kind behind `store.url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://PATH`.
    Sqlite,
    /// `postgres://...`.
    Postgres,
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed or could not be reached.
    #[error("the store's database failed: {0}")]
    Db(#[from] sqlx::Error),
    /// No answer in time.
    #[error("the store's database did not answer in time")]
    Timeout,
    /// A value in the database makes no sense.
    #[error("the store holds a value that cannot be read: {0}")]
    Corrupt(String),
    /// A secret could not be opened.
    #[error(transparent)]
    Secret(#[from] Undecryptable),
    /// `store.encryption_key` is not the key the store was written with.
    #[error("store.encryption_key is not the key this store was written with")]
    WrongKey,
}

/// `[store]`, typed.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// `sqlite://...` (path resolved against the config file's folder) or `postgres://...`.
    pub url: Secret,
    /// Which database.
    pub backend: Backend,
    /// The 32-byte AEAD key sealing Dify keys and JWT secrets.
    pub encryption_key: Secret,
}

struct Inner {
    pool: AnyPool,
    backend: Backend,
    vault: Vault,
    url: Secret,
    replica: String,
}

/// The store: a pool on a runtime of its own.
pub struct Store {
    runtime: Option<tokio::runtime::Runtime>,
    inner: Arc<Inner>,
}

impl Drop for Store {
    /// Pingora may drop the last handle on one of its runtime threads, where dropping a runtime
    /// would panic: shut it down in the background instead.
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

/// Connect options for `url` (SQLite: created if missing, WAL, waits for a busy lock).
fn options(url: &str, backend: Backend) -> Result<AnyConnectOptions, StoreError> {
    let url = match backend {
        Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
        _ => url.to_string(),
    };
    Ok(AnyConnectOptions::from_str(&url)?.disable_statement_logging())
}

/// Creates the folder of an SQLite file when it is missing.
fn sqlite_folder(url: &str) -> Result<(), StoreError> {
    let path = url.trim_start_matches("sqlite://");
    let path = std::path::Path::new(path.split('?').next().unwrap_or(path));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Corrupt(format!("cannot create {}: {e}", dir.display())))?;
    }
    Ok(())
}

async fn connect_pool(s: &StoreSettings) -> Result<AnyPool, StoreError> {
    sqlx::any::install_default_drivers();
    if s.backend == Backend::Sqlite {
        sqlite_folder(s.url.expose())?;
    }
    let opts = options(s.url.expose(), s.backend)?;
    let sqlite = s.backend == Backend::Sqlite;
    let pool = AnyPoolOptions::new()
        .max_connections(if sqlite { 4 } else { 8 })
        .acquire_timeout(DB_TIMEOUT)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect_with(opts)
        .await?;
    Ok(pool)
}

impl Store {
    /// Connects (within a few seconds), runs the migrations, and keeps the connection pool on a
    /// runtime of its own. Call outside any async runtime (start-up) or from a blocking thread.
    pub fn open(s: &StoreSettings, replica: String) -> Result<Store, StoreError> {
        let vault = Vault::new(&decode_key(&s.encryption_key).ok_or(Undecryptable)?).ok_or(Undecryptable)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let pool = runtime.block_on(async {
            let connect = async {
                let pool = connect_pool(s).await?;
                let mut conn = pool.acquire().await?;
                migrate::run(&mut conn, s.backend).await?;
                migrate::check_key(&mut conn, &vault).await?;
                Ok::<_, StoreError>(pool)
            };
            tokio::time::timeout(DB_TIMEOUT * 2, connect)
                .await
                .map_err(|_| StoreError::Timeout)?
        })?;
        Ok(Store {
            runtime: Some(runtime),
            inner: Arc::new(Inner {
                pool,
                backend: s.backend,
                vault,
                url: s.url.clone(),
                replica,
            }),
        })
    }

    /// Runs `work` on the store's runtime, within the database timeout.
    async fn run<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let Some(rt) = &self.runtime else {
            return Err(StoreError::Timeout);
        };
        let task = rt.spawn(tokio::time::timeout(DB_TIMEOUT, work(self.inner.clone())));
        match task.await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(StoreError::Timeout),
            Err(e) => Err(StoreError::Corrupt(e.to_string())),
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// This replica's name in the audit log.
    pub fn replica(&self) -> &str {
        &self.inner.replica
    }

    /// The vault (new ids and API keys are drawn from it).
    pub fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    /// Reads everything, consistently.
    pub async fn load(&self) -> Result<StoreData, StoreError> {
        self.run(|i| async move {
            // A transaction dropped half-way (timeout) is rolled back before its connection is reused.
            let mut tx = i.pool.begin().await?;
            if i.backend == Backend::Postgres {
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .execute(&mut *tx)
                    .await?;
            }
            let data = sql::load(&mut tx, i.backend, &i.vault).await;
            tx.rollback().await?;
            data
        })
        .await
    }

    /// [`Store::load`] from start-up code (no runtime running).
    pub fn load_blocking(&self) -> Result<StoreData, StoreError> {
        let Some(rt) = &self.runtime else {
            return Err(StoreError::Timeout);
        };
        rt.block_on(self.load())
    }

    /// The change counter.
    pub async fn version(&self) -> Result<i64, StoreError> {
        self.run(|i| async move {
            let mut conn = i.pool.acquire().await?;
            sql::version(&mut conn, i.backend).await
        })
        .await
    }

    /// Makes `change` for `actor` in one transaction; the audit log records it.
    pub async fn apply(&self, change: Change, actor: String) -> Result<Applied, StoreError> {
        self.run(move |i| async move {
            let mut tx = i.pool.begin().await?;
            let who = sql::Author {
                actor: &actor,
                replica: &i.replica,
                now: crate::clock::unix_now() as i64,
            };
            let applied = sql::apply(&mut tx, i.backend, &i.vault, &change, &who).await?;
            if matches!(applied, Applied::NotFound | Applied::Conflict) {
                tx.rollback().await?;
            } else {
                tx.commit().await?;
            }
            Ok(applied)
        })
        .await
    }

    /// The newest `limit` audit entries.
    pub async fn audit(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.run(move |i| async move {
            let mut conn = i.pool.acquire().await?;
            sql::audit(&mut conn, i.backend, limit).await
        })
        .await
    }

    /// Watches for changes made by any replica (or any process on the SQLite file) and reports
    /// them, with whether the database answers, on the returned channel. Runs on the store's
    /// runtime until the store is dropped.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<Health> {
        let (tx, rx) = tokio::sync::watch::channel(Health { changes: 0, up: true });
        if let Some(rt) = &self.runtime {
            rt.spawn(watch::run(self.inner.clone(), tx));
        }
        rx
    }
}

/// The store as the services share it: opened at start-up, or later by the store service when the
/// database was unreachable then; and whether it answers now.
pub struct StoreHandle {
    settings: StoreSettings,
    replica: String,
    opened: OnceLock<Arc<Store>>,
    up: AtomicBool,
}

impl StoreHandle {
    /// A handle on the store `settings` name, not yet opened; `replica` names this process in the
    /// audit log.
    pub fn new(settings: StoreSettings, replica: String) -> Self {
        Self {
            settings,
            replica,
            opened: OnceLock::new(),
            up: AtomicBool::new(false),
        }
    }

    /// The store, once opened.
    pub fn get(&self) -> Option<&Arc<Store>> {
        self.opened.get()
    }

    /// Which database.
    pub fn backend(&self) -> Backend {
        self.settings.backend
    }

    /// Opens the store (start-up: no async runtime may be running on this thread).
    pub fn open_blocking(&self) -> Result<&Arc<Store>, StoreError> {
        if let Some(s) = self.opened.get() {
            return Ok(s);
        }
        let store = Store::open(&self.settings, self.replica.clone())?;
        self.set_up(true);
        Ok(self.opened.get_or_init(|| Arc::new(store)))
    }

    /// Opens the store from async code (on a blocking thread).
    pub async fn open(&self) -> Result<&Arc<Store>, StoreError> {
        if let Some(s) = self.opened.get() {
            return Ok(s);
        }
        let (settings, replica) = (self.settings.clone(), self.replica.clone());
        let store = tokio::task::spawn_blocking(move || Store::open(&settings, replica))
            .await
            .map_err(|e| StoreError::Corrupt(e.to_string()))??;
        self.set_up(true);
        Ok(self.opened.get_or_init(|| Arc::new(store)))
    }

    /// Whether the database answered the last look.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records whether the database answers; returns whether that changed.
    pub fn set_up(&self, up: bool) -> bool {
        self.up.swap(up, Ordering::Relaxed) != up
    }
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle")
            .field("backend", &self.settings.backend)
            .field("opened", &self.opened.get().is_some())
            .field("up", &self.is_up())
            .finish()
    }
}

/// What the watcher saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Changes noticed so far (each one means: read the store again).
    pub changes: u64,
    /// The database answered the last look.
    pub up: bool,
}

/// The 32 bytes of `store.encryption_key` (base64, standard or URL-safe, padded or not).
pub fn decode_key(key: &Secret) -> Option<[u8; 32]> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let text = key.expose().trim();
    let raw = STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
        .ok()?;
    raw.try_into().ok()
}
