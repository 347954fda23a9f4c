-- 0004: when each task was sent and answered, and how many bytes its holder
-- sent, kept on the task row. Dispatch times otherwise live only in memory and
-- contributions are deleted when a job finishes, so a finished job's page
-- could not say how long each holder took or how much it sent. 0 means
-- "not yet" (or a task from before this migration).
ALTER TABLE tasks ADD COLUMN dispatched_at DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN answered_at DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;

-- A job's page reads its events once a second or two while it runs; without
-- these that is a walk over every event ever recorded. Rejected messages
-- name only the task, hence the second index.
CREATE INDEX events_job ON events (job_id, seq);
CREATE INDEX events_task ON events (task_id);
