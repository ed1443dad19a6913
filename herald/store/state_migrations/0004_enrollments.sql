-- Enrollments: a customer inside one version of a journey. `trigger` is the event that entered
-- it (JSON: name, source, payload), what templates call `event`. Waiting ones are found by due
-- time (timers) and by the event they await (waits), per customer.
CREATE TABLE enrollments (
    id            TEXT PRIMARY KEY,
    workspace_id  INTEGER NOT NULL,
    journey_id    INTEGER NOT NULL,
    journey       TEXT NOT NULL,
    version       INTEGER NOT NULL,
    customer_id   INTEGER NOT NULL,
    status        TEXT NOT NULL,
    step          TEXT,
    due_at_us     INTEGER,
    awaiting      TEXT,
    steps_taken   INTEGER NOT NULL,
    trigger       TEXT NOT NULL,
    entered_at_us INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX enrollments_due ON enrollments (status, due_at_us);
CREATE INDEX enrollments_by_customer ON enrollments (customer_id, status, awaiting);
CREATE INDEX enrollments_by_journey ON enrollments (journey_id, customer_id, status);
