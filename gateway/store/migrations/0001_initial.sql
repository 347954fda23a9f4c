-- 0001: the schema the gateway shipped before migrations were numbered.
-- Databases created then (user_version 0, these tables present) are
-- recognised as version 1 without running this file again.
--
-- Plain SQL types and no SQLite-only features beyond AUTOINCREMENT-free
-- integer keys, so the same file can back PostgreSQL later. Two words are
-- SQLite's own and need PostgreSQL's spelling there: BLOB (BYTEA) and the
-- events.seq key that SQLite numbers by itself (an identity column).
CREATE TABLE parties (
    name        TEXT PRIMARY KEY,
    listings    BLOB NOT NULL,          -- serialized datawharf.v1.Register
    first_seen  DOUBLE PRECISION NOT NULL,
    last_seen   DOUBLE PRECISION NOT NULL,
    contributions BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE jobs (
    job_id      TEXT PRIMARY KEY,
    buyer       TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    backend     TEXT NOT NULL DEFAULT '',
    spec        BLOB NOT NULL,          -- serialized datawharf.v1.AggregateSpec
    state       TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    min_parties INTEGER NOT NULL,
    created_at  DOUBLE PRECISION NOT NULL,
    deadline    DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    UNIQUE (buyer, request_id)
);
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX jobs_finished ON jobs (finished_at);
CREATE TABLE tasks (
    task_id     TEXT PRIMARY KEY,
    job_id      TEXT NOT NULL REFERENCES jobs (job_id),
    party       TEXT NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    updated_at  DOUBLE PRECISION NOT NULL,
    UNIQUE (job_id, party)
);
CREATE INDEX tasks_party ON tasks (party, state);
-- One row per task at most: a repeated contribution can never be counted twice.
CREATE TABLE contributions (
    task_id     TEXT PRIMARY KEY REFERENCES tasks (task_id),
    job_id      TEXT NOT NULL,
    payload     BLOB NOT NULL,          -- serialized datawharf.v1.EncryptedFigures
    received_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE results (
    job_id      TEXT PRIMARY KEY REFERENCES jobs (job_id),
    payload     BLOB NOT NULL,          -- serialized datawharf.v1.JobResult
    created_at  DOUBLE PRECISION NOT NULL
);
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    at          DOUBLE PRECISION NOT NULL,
    kind        TEXT NOT NULL,
    job_id      TEXT NOT NULL DEFAULT '',
    task_id     TEXT NOT NULL DEFAULT '',
    party       TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT ''
);
