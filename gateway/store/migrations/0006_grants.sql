-- 0006: data-use grants (datawharf/grants.py). One row per buyer and holder asked;
-- the holder's signature over the canonical terms makes a grant APPROVED.
CREATE TABLE grants (
    id           TEXT PRIMARY KEY,
    buyer        TEXT NOT NULL,
    party        TEXT NOT NULL,
    dataset      TEXT NOT NULL,
    state        TEXT NOT NULL,             -- PENDING, APPROVED, REJECTED, REVOKED
    reason       TEXT NOT NULL DEFAULT '',
    terms        BLOB NOT NULL,             -- canonical JSON, as signed
    signature    BLOB NOT NULL DEFAULT x'',
    certificate  BLOB NOT NULL DEFAULT x'',
    requested_at REAL NOT NULL,
    decided_at   REAL NOT NULL DEFAULT 0
);
CREATE INDEX grants_buyer ON grants (buyer, requested_at);
CREATE INDEX grants_party ON grants (party, state, requested_at);
