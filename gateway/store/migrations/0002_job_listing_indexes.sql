-- 0002: indexes for the two queries that run on a timer over every job ever
-- stored: the metrics scrape (job_counts) and the dashboard's 2 s refresh
-- (recent_jobs). Jobs are never deleted, and a BFV or CKKS spec is ~256 KiB
-- stored ahead of jobs.state, so reading state from the table walks every
-- spec's overflow pages. With 2,000 jobs (half BFV/CKKS-sized) each query
-- took ~70 ms without these; with them ~0.3 ms and ~2 ms.

-- job_counts groups by (kind, state): answered from this index alone.
CREATE INDEX jobs_kind_state ON jobs (kind, state);

-- recent_jobs takes the newest jobs by creation time and counts their tasks.
CREATE INDEX jobs_created ON jobs (created_at);
