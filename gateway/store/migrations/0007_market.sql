-- 0007: the market (gateway/market/): listings under review, the signed
-- decisions on them, listings recognised from other exchanges, and the
-- charges of finished jobs. Amounts are exact decimals stored as text.

-- One row per submitted version of a holder's listing of one dataset.
CREATE TABLE listings (
    listing_id   TEXT PRIMARY KEY,           -- lst-<hex>
    holder       TEXT NOT NULL,
    dataset      TEXT NOT NULL,
    version      INTEGER NOT NULL,           -- 1, 2, ... per (holder, dataset)
    state        TEXT NOT NULL,              -- datawharf.market.ListingState
    submission   BLOB NOT NULL,              -- the holder's SignedListing, serialized
    submitted_at REAL NOT NULL,
    decided_at   REAL NOT NULL DEFAULT 0,
    ledger_seq   INTEGER NOT NULL DEFAULT 0,  -- the listing_submitted entry (0 with --no-ledger)
    UNIQUE (holder, dataset, version)
);
CREATE INDEX listings_state ON listings (state, submitted_at);
CREATE INDEX listings_holder ON listings (holder, dataset, version);

-- Every review decision, as signed by its reviewer (operator or authority).
CREATE TABLE listing_decisions (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    listing_id TEXT NOT NULL REFERENCES listings (listing_id),
    action     TEXT NOT NULL,                -- approve | reject | delist
    reviewer   TEXT NOT NULL,
    role       TEXT NOT NULL,                -- operator | authority
    text       TEXT NOT NULL,                -- the note or reason
    at         REAL NOT NULL,
    signed     BLOB NOT NULL,                -- the reviewer's SignedDecision, serialized
    ledger_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX listing_decisions_listing ON listing_decisions (listing_id, seq);

-- Listings another exchange approved, imported from its signed bundle.
CREATE TABLE foreign_listings (
    home        TEXT NOT NULL,               -- the home exchange (its CA's subject)
    listing_id  TEXT NOT NULL,               -- as the home exchange numbers it
    holder      TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    entry       TEXT NOT NULL,               -- the bundle's entry (submission and decisions), JSON
    imported_at REAL NOT NULL,
    bundle      TEXT NOT NULL,               -- SHA-256 of the bundle it came in, hex
    PRIMARY KEY (home, listing_id)
);

-- One line per holder paid for a DONE job, plus the operator's fee line (holder '').
CREATE TABLE charges (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     TEXT NOT NULL,
    at         REAL NOT NULL,                -- when the job finished
    buyer      TEXT NOT NULL,
    holder     TEXT NOT NULL,                -- '' on the fee line
    kind       TEXT NOT NULL,                -- holder | fee
    dataset    TEXT NOT NULL,
    listing_id TEXT NOT NULL,                -- '' on the fee line
    amount     TEXT NOT NULL,                -- exact decimal, at the currency's minor unit
    currency   TEXT NOT NULL,
    ledger_seq INTEGER NOT NULL DEFAULT 0    -- the job_charged entry (0 with --no-ledger)
);
CREATE INDEX charges_job ON charges (job_id);
CREATE INDEX charges_holder ON charges (holder, at);
CREATE INDEX charges_buyer ON charges (buyer, at);
