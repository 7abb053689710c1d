-- The backend's side of an objectId: the states `consumed` (attached once by the service that
-- received it) and `rejected` (an upload that broke a rule the cloud could not enforce), and
-- when and for what the object was consumed. SQLite cannot change a CHECK constraint in
-- place, so the table is rebuilt; the AUTOINCREMENT counter is carried over (ids reserved
-- ahead are never handed out again).
CREATE TABLE objects_v4 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    owner        TEXT    NOT NULL,
    cloud_type   INTEGER NOT NULL,
    module       TEXT    NOT NULL,
    platform     TEXT    NOT NULL,
    project_id   INTEGER,
    extension    TEXT    NOT NULL,
    is_dir       INTEGER NOT NULL DEFAULT 0,
    bucket       TEXT,
    object_key   TEXT,
    status       TEXT    NOT NULL CHECK (status IN ('issued', 'uploaded', 'failed', 'expired', 'rejected', 'consumed')),
    failure      TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    uploaded_at  INTEGER,
    size         INTEGER,
    mime         TEXT,
    etag         TEXT,
    verified_by  TEXT,
    consumed_at  INTEGER,
    consumed_ref TEXT
);
INSERT INTO objects_v4 (id, owner, cloud_type, module, platform, project_id, extension, is_dir,
    bucket, object_key, status, failure, created_at, expires_at, uploaded_at, size, mime, etag,
    verified_by)
SELECT id, owner, cloud_type, module, platform, project_id, extension, is_dir, bucket,
    object_key, status, failure, created_at, expires_at, uploaded_at, size, mime, etag,
    verified_by
FROM objects;
CREATE TEMP TABLE objects_seq_keep AS SELECT seq FROM sqlite_sequence WHERE name = 'objects';
DROP TABLE objects;
ALTER TABLE objects_v4 RENAME TO objects;
UPDATE sqlite_sequence SET seq = max(seq, COALESCE((SELECT seq FROM objects_seq_keep), 0))
    WHERE name = 'objects';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'objects', seq FROM objects_seq_keep
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'objects');
DROP TABLE objects_seq_keep;
CREATE INDEX objects_owner ON objects (owner);
CREATE INDEX objects_status_expires ON objects (status, expires_at);
