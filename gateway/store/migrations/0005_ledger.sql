-- 0005: the ledger (datawharf/ledger.py): one row per entry, each carrying the
-- hash of the one before and the gateway's Ed25519 signature. Rows are only
-- ever appended; the gateway verifies the whole chain when it starts.
CREATE TABLE ledger (
    seq    INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL DEFAULT '',  -- the job the entry is about, if any: a buyer reads its own
    entry  TEXT NOT NULL              -- the entry as one canonical JSON line
);
-- A buyer's GetJobLedger reads its job's entries, not the whole ledger.
CREATE INDEX ledger_job ON ledger (job_id, seq);
