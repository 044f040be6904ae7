-- dify-gateway store, version 1 (SQLite): tenants, their apps (Dify keys sealed), gateway API keys
-- (hashes only), tenant JWT keys, revocations, the audit log, and the change counter.
CREATE TABLE gw_meta (id INTEGER PRIMARY KEY, version INTEGER NOT NULL);
INSERT INTO gw_meta (id, version) VALUES (1, 0);
CREATE TABLE gw_tenants (
    id TEXT PRIMARY KEY,
    disabled INTEGER NOT NULL DEFAULT 0,
    limits TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL
);
CREATE TABLE gw_apps (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    key_sealed BLOB NOT NULL,
    key_last4 TEXT NOT NULL,
    scope_users INTEGER NOT NULL,
    app_wide INTEGER,
    max_tokens INTEGER,
    max_share REAL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE gw_api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT,
    app TEXT,
    hash BLOB NOT NULL UNIQUE,
    last4 TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE TABLE gw_jwt_keys (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    material BLOB,
    jwks_url TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE gw_revocations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    jti TEXT,
    issued_before INTEGER,
    created_at INTEGER NOT NULL
);
CREATE TABLE gw_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    replica TEXT NOT NULL
);
