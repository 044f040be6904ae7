-- dify-gateway store, version 1 (PostgreSQL): tenants, their apps (Dify keys sealed), gateway API keys
-- (hashes only), tenant JWT keys, revocations, the audit log, and the change counter.
CREATE TABLE gw_meta (id BIGINT PRIMARY KEY, version BIGINT NOT NULL);
INSERT INTO gw_meta (id, version) VALUES (1, 0);
CREATE TABLE gw_tenants (
    id TEXT PRIMARY KEY,
    disabled BIGINT NOT NULL DEFAULT 0,
    limits TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);
CREATE TABLE gw_apps (
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    key_sealed BYTEA NOT NULL,
    key_last4 TEXT NOT NULL,
    scope_users BIGINT NOT NULL,
    app_wide BIGINT,
    max_tokens BIGINT,
    max_share DOUBLE PRECISION,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE gw_api_keys (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT,
    app TEXT,
    hash BYTEA NOT NULL UNIQUE,
    last4 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE TABLE gw_jwt_keys (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    material BYTEA,
    jwks_url TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE gw_revocations (
    seq BIGSERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    jti TEXT,
    issued_before BIGINT,
    created_at BIGINT NOT NULL
);
CREATE TABLE gw_audit (
    seq BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    replica TEXT NOT NULL
);
