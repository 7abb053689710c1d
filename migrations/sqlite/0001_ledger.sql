-- The upload ledger: one row per allocated objectId.
CREATE TABLE objects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,   -- objectId; AUTOINCREMENT never reuses ids
    owner       TEXT    NOT NULL,                    -- JWT sub
    cloud_type  INTEGER NOT NULL,
    module      TEXT    NOT NULL,
    platform    TEXT    NOT NULL,
    project_id  INTEGER,
    extension   TEXT    NOT NULL,
    is_dir      INTEGER NOT NULL DEFAULT 0,
    bucket      TEXT,
    object_key  TEXT,
    status      TEXT    NOT NULL CHECK (status IN ('issued', 'uploaded', 'failed', 'expired')),
    failure     TEXT,
    created_at  INTEGER NOT NULL,                    -- Unix seconds
    expires_at  INTEGER,
    uploaded_at INTEGER,
    size        INTEGER,
    mime        TEXT,
    etag        TEXT
);
CREATE INDEX objects_owner ON objects (owner);
CREATE INDEX objects_status_expires ON objects (status, expires_at);

-- Idempotency-Key records: (owner, key) -> parameters hash and objectId.
CREATE TABLE idempotency_keys (
    owner       TEXT    NOT NULL,
    idem_key    TEXT    NOT NULL,
    params_hash TEXT    NOT NULL,
    object_id   INTEGER,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (owner, idem_key)
);
