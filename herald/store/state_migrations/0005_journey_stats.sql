-- How many times customers reached each step of each journey (all versions together).
CREATE TABLE journey_step_counts (
    journey_id INTEGER NOT NULL,
    step       TEXT NOT NULL,
    entered    INTEGER NOT NULL,
    PRIMARY KEY (journey_id, step)
) WITHOUT ROWID;
