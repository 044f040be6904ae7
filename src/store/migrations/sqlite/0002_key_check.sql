-- dify-gateway store, version 2 (SQLite): a value sealed with the store's encryption key, so that a
-- replica started with another key is refused at start-up instead of failing on every row.
ALTER TABLE gw_meta ADD COLUMN key_check BLOB;
