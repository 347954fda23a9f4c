-- A contribution may live outside its row (PostgreSQL stores keep blobs in
-- a directory): `blob` names it there, and `payload` is then empty.
ALTER TABLE contributions ADD COLUMN blob TEXT NOT NULL DEFAULT '';

-- Gateway replicas sharing one database: a job is run by the replica that
-- owns it, for as long as that replica keeps renewing its lease; a party's
-- stream is held by one replica at a time. One store alone owns every job.
ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE INDEX jobs_owner ON jobs (owner, state);
ALTER TABLE parties ADD COLUMN replica TEXT NOT NULL DEFAULT '';
CREATE TABLE replicas (
    name    TEXT PRIMARY KEY,
    seen_at DOUBLE PRECISION NOT NULL
);
