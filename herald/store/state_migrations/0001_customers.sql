-- The processor's state, in a database file of its own (herald.db.state beside herald.db), so that
-- its transactions never hold the event log's write lock: ingestion commits never wait for it.
--
-- customers: attributes as a JSON object; a customer merged into another keeps its row with
-- merged_into set, so its id still leads to the customer it became. `uuid` (16 bytes) is the id
-- the API shows and that correlationKey `_id` also resolves; `id` is internal.
CREATE TABLE customers (
    id            INTEGER PRIMARY KEY,
    uuid          BLOB NOT NULL UNIQUE,
    workspace_id  INTEGER NOT NULL,
    attributes    TEXT NOT NULL,
    created_at_us INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL,
    merged_into   INTEGER
);
CREATE INDEX customers_by_workspace ON customers (workspace_id, id);

-- What finds a customer: its `_id` identifiers and the values of its key attributes (the primary
-- key and every attribute an event has used as correlationKey). A value may name several customers
-- for a non-unique attribute; the oldest (lowest id) is the one an event resolves to.
CREATE TABLE customer_keys (
    workspace_id INTEGER NOT NULL,
    name         TEXT NOT NULL,
    value        TEXT NOT NULL,
    customer_id  INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, name, value, customer_id)
) WITHOUT ROWID;
CREATE INDEX customer_keys_by_customer ON customer_keys (customer_id);

-- The attribute names looked up as keys in each workspace (besides `_id`).
CREATE TABLE key_names (
    workspace_id INTEGER NOT NULL,
    name         TEXT NOT NULL,
    PRIMARY KEY (workspace_id, name)
) WITHOUT ROWID;

-- What the processor did with each event. id = seq << 24 | the event's index in its record batch,
-- so records sort in commit order and point back into the log.
CREATE TABLE event_records (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL,
    customer_id  INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    detail       TEXT
);
CREATE INDEX event_records_by_customer ON event_records (customer_id, id);

-- `source: "message"` status events ($delivered, $opened, ...) against the message they name.
CREATE TABLE message_events (
    event_id     INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL,
    message_id   TEXT NOT NULL,
    status       TEXT NOT NULL,
    customer_id  INTEGER NOT NULL
);
CREATE INDEX message_events_by_message ON message_events (workspace_id, message_id);

-- One row per partition: how far it is processed and who holds it.
CREATE TABLE partitions (
    partition      INTEGER PRIMARY KEY,
    checkpoint_seq INTEGER NOT NULL DEFAULT 0,
    processed      INTEGER NOT NULL DEFAULT 0,
    owner          TEXT,
    lease_until_us INTEGER NOT NULL DEFAULT 0
);

-- Live processors (heartbeats), so each takes its fair share of partitions.
CREATE TABLE processors (
    id           TEXT PRIMARY KEY,
    started_at_us INTEGER NOT NULL,
    seen_at_us   INTEGER NOT NULL
);

-- Every committed processing step: which processor advanced which partition over which seqs.
CREATE TABLE processing_log (
    id         INTEGER PRIMARY KEY,
    partition  INTEGER NOT NULL,
    from_seq   INTEGER NOT NULL,
    to_seq     INTEGER NOT NULL,
    owner      TEXT NOT NULL,
    at_us      INTEGER NOT NULL
);
CREATE INDEX processing_log_by_partition ON processing_log (partition, from_seq);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
