//! Notices changes to the store made anywhere (beside the request flow, on the store's runtime):
//! PostgreSQL `LISTEN`/`NOTIFY` with the change counter read every second as a backstop; SQLite's
//! `PRAGMA data_version` read every 200 ms on a connection of its own (it changes when any other
//! connection, of any process, commits). Also tells whether the database answers.

use super::{Backend, Health, Inner, options, sql};
use sqlx::postgres::PgListener;
use sqlx::{AnyConnection, ConnectOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often SQLite's data version is read.
const SQLITE_POLL: Duration = Duration::from_millis(200);
/// How long a PostgreSQL notification is waited for before the counter is read anyway.
const PG_BACKSTOP: Duration = Duration::from_secs(1);

/// Runs until the receiver is gone.
pub(super) async fn run(inner: Arc<Inner>, tx: watch::Sender<Health>) {
    let mut state = Watcher {
        inner,
        tx,
        last: None,
        listener: None,
        conn: None,
    };
    while !state.tx.is_closed() {
        let seen = match state.inner.backend {
            Backend::Postgres => state.postgres().await,
            Backend::Sqlite => state.sqlite().await,
        };
        state.report(seen);
    }
}

struct Watcher {
    inner: Arc<Inner>,
    tx: watch::Sender<Health>,
    /// The last counter (PostgreSQL) or data version (SQLite) read.
    last: Option<i64>,
    listener: Option<PgListener>,
    conn: Option<AnyConnection>,
}

/// One look: `Some(changed)`, or `None` when the database did not answer.
type Seen = Option<bool>;

impl Watcher {
    fn report(&mut self, seen: Seen) {
        let before = *self.tx.borrow();
        let now = Health {
            changes: before.changes + u64::from(seen == Some(true)),
            up: seen.is_some(),
        };
        if now != before {
            self.tx.send_replace(now);
        }
    }

    /// Waits for a notification (or the backstop), then reads the counter.
    async fn postgres(&mut self) -> Seen {
        if self.listener.is_none() {
            self.listener = connect_listener(&self.inner).await;
        }
        let mut notified = false;
        match &mut self.listener {
            Some(l) => match tokio::time::timeout(PG_BACKSTOP, l.try_recv()).await {
                Err(_) => {}
                // `None`: the connection was lost and re-established; changes may have been missed.
                Ok(Ok(_)) => notified = true,
                Ok(Err(_)) => self.listener = None,
            },
            None => tokio::time::sleep(PG_BACKSTOP).await,
        }
        let version = async {
            let mut conn = self.inner.pool.acquire().await.ok()?;
            sql::version(&mut conn, Backend::Postgres).await.ok()
        };
        let version = tokio::time::timeout(PG_BACKSTOP, version).await.ok().flatten()?;
        // The first look counts as a change: whatever happened before the watch began is read.
        let changed = notified || self.last.is_none_or(|l| l != version);
        self.last = Some(version);
        Some(changed)
    }

    /// Reads SQLite's data version on the watcher's own connection.
    async fn sqlite(&mut self) -> Seen {
        tokio::time::sleep(SQLITE_POLL).await;
        if self.conn.is_none() {
            let opts = options(self.inner.url.expose(), Backend::Sqlite).ok()?;
            self.conn = opts.connect().await.ok();
        }
        let conn = self.conn.as_mut()?;
        let read = sqlx::query_scalar::<_, i64>("PRAGMA data_version").fetch_one(conn);
        match tokio::time::timeout(PG_BACKSTOP, read).await {
            Ok(Ok(v)) => {
                let changed = self.last.is_none_or(|l| l != v);
                self.last = Some(v);
                Some(changed)
            }
            _ => {
                self.conn = None;
                None
            }
        }
    }
}

async fn connect_listener(inner: &Inner) -> Option<PgListener> {
    let connect = async {
        let mut l = PgListener::connect(inner.url.expose()).await.ok()?;
        l.listen(sql::CHANNEL).await.ok()?;
        Some(l)
    };
    tokio::time::timeout(PG_BACKSTOP * 3, connect)
        .await
        .ok()
        .flatten()
}
