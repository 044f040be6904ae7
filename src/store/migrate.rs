//! Versioned migrations of the store's schema (start-up, before the first read): the SQL files in
//! `src/store/migrations/<backend>/` are embedded and applied in order, each once, in one
//! transaction that also records it, so replicas starting together migrate once.

use super::{Backend, StoreError};
use sqlx::{AnyConnection, Row};

/// `(version, SQL)` per backend, in order.
const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("migrations/sqlite/0001_init.sql")),
    (2, include_str!("migrations/sqlite/0002_key_check.sql")),
];
const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("migrations/postgres/0001_init.sql")),
    (2, include_str!("migrations/postgres/0002_key_check.sql")),
];

/// Brings the schema to the newest version; returns the versions applied.
pub async fn run(conn: &mut AnyConnection, backend: Backend) -> Result<Vec<i64>, StoreError> {
    let (steps, begin) = match backend {
        Backend::Sqlite => (SQLITE, "BEGIN IMMEDIATE"),
        Backend::Postgres => (POSTGRES, "BEGIN"),
    };
    sqlx::query(begin).execute(&mut *conn).await?;
    let result = apply(conn, backend, steps).await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    sqlx::query(end).execute(&mut *conn).await?;
    result
}

async fn apply(
    conn: &mut AnyConnection,
    backend: Backend,
    steps: &[(i64, &str)],
) -> Result<Vec<i64>, StoreError> {
    if backend == Backend::Postgres {
        // Replicas starting together: one migrates, the others wait here (before even creating the
        // schema table) and then find it done.
        sqlx::query("SELECT pg_advisory_xact_lock(7243019001)")
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS gw_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM gw_schema")
        .fetch_one(&mut *conn)
        .await?
        .try_get("v")?;
    let mut applied = Vec::new();
    for (version, text) in steps.iter().filter(|(v, _)| *v > current) {
        for statement in text
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty() && !only_comments(s))
        {
            sqlx::query(statement).execute(&mut *conn).await?;
        }
        sqlx::query("INSERT INTO gw_schema (version, applied_at) VALUES ($1, $2)")
            .bind(*version)
            .bind(crate::clock::unix_now() as i64)
            .execute(&mut *conn)
            .await?;
        applied.push(*version);
    }
    Ok(applied)
}

fn only_comments(statement: &str) -> bool {
    statement
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
}

/// Proves `vault` holds the key the store was written with: seals a check value the first time,
/// opens it every time after.
pub async fn check_key(conn: &mut AnyConnection, vault: &super::vault::Vault) -> Result<(), StoreError> {
    const BINDING: &str = "meta:key-check";
    let sealed = vault.seal(BINDING, "dify-gateway")?;
    sqlx::query("UPDATE gw_meta SET key_check = $1 WHERE id = 1 AND key_check IS NULL")
        .bind(sealed)
        .execute(&mut *conn)
        .await?;
    let stored: Option<Vec<u8>> = sqlx::query("SELECT key_check FROM gw_meta WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?
        .try_get("key_check")?;
    match stored.map(|s| vault.open(BINDING, &s)) {
        Some(Ok(_)) => Ok(()),
        _ => Err(StoreError::WrongKey),
    }
}
