-- The outbox: one row per message a journey step sends, keyed by (enrollment, step number) so
-- that running a step again never makes a second message. `message_id` is what receivers see
-- (Idempotency-Key, Message-ID). Delivery workers claim due rows (claimed_by, claimed_until_us)
-- and record each attempt; a worker that dies loses its claims when they run out.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    message_id       TEXT NOT NULL UNIQUE,
    workspace_id     INTEGER NOT NULL,
    enrollment_id    TEXT NOT NULL,
    step_number      INTEGER NOT NULL,
    journey          TEXT NOT NULL,
    step             TEXT NOT NULL,
    customer_id      TEXT NOT NULL,
    kind             TEXT NOT NULL,
    message          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    due_at_us        INTEGER NOT NULL,
    claimed_by       TEXT,
    claimed_until_us INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    created_at_us    INTEGER NOT NULL,
    sent_at_us       INTEGER,
    UNIQUE (enrollment_id, step_number)
);
CREATE INDEX outbox_due ON outbox (status, due_at_us);
CREATE INDEX outbox_by_workspace ON outbox (workspace_id, status, id);
