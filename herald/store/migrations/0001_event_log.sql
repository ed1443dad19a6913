-- The event log: one row per (request, partition) record batch, in commit order (seq).
-- request_seq: the seq of the request's first record batch; positions: each event's place in its
-- request (uint32, little-endian); ids: 16-byte event ids; events: a JSON array of the events as
-- sent. The rows of one request have consecutive seqs from request_seq.
CREATE TABLE event_batches (
    seq            INTEGER PRIMARY KEY,
    request_seq    INTEGER NOT NULL,
    workspace_id   INTEGER NOT NULL,
    partition      INTEGER NOT NULL,
    count          INTEGER NOT NULL,
    received_at_us INTEGER NOT NULL,
    sent_at_us     INTEGER,
    ids            BLOB NOT NULL,
    positions      BLOB NOT NULL,
    events         BLOB NOT NULL
);
-- Sequential keys only: each group commit touches at most one page per partition.
CREATE INDEX event_batches_by_partition ON event_batches (partition, seq);

CREATE TABLE workspaces (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    schema     TEXT NOT NULL
);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces (id),
    kind         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     BLOB NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

CREATE TABLE quarantine (
    id             INTEGER PRIMARY KEY,
    workspace_id   INTEGER NOT NULL,
    batch_index    INTEGER NOT NULL,
    uuid           TEXT,
    raw            BLOB NOT NULL,
    errors         TEXT NOT NULL,
    received_at_us INTEGER NOT NULL,
    replayed_at_us INTEGER
);
CREATE INDEX quarantine_by_workspace ON quarantine (workspace_id, id);

CREATE TABLE workspace_counters (
    workspace_id INTEGER PRIMARY KEY,
    accepted     INTEGER NOT NULL DEFAULT 0,
    duplicates   INTEGER NOT NULL DEFAULT 0,
    rejected     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
