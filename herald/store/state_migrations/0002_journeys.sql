-- Journeys: a name per workspace, a status, and every version of the document as sent (JSON).
-- Customers inside a journey finish on the version they entered.
CREATE TABLE journeys (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    version       INTEGER NOT NULL,
    created_at_us INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE journey_versions (
    journey_id    INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    definition    TEXT NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (journey_id, version)
) WITHOUT ROWID;
