-- Webhook outbox: one row per event, written in the transaction of the state change it
-- reports; the delivery task claims due rows with a lease and records the outcome.
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE,            -- UUID, the Stsgate-Event-Id
    event_type      TEXT    NOT NULL CHECK (event_type IN ('object.uploaded', 'object.rejected', 'object.expired', 'object.consumed')),
    object_id       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,                   -- Unix seconds
    body            TEXT    NOT NULL,                   -- exactly the bytes POSTed and signed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,                            -- a replica is delivering it until then
    delivered_at    INTEGER,
    dead_at         INTEGER,
    last_error      TEXT                                -- short, never a secret
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND dead_at IS NULL;
