"""The job store's queries, the same on SQLite and PostgreSQL.

``Store`` holds every query; a subclass supplies the connection (anything
with sqlite3's ``execute``/``executemany``, transactions opened by
``with db:`` and ``BEGIN``, rows readable by name and by index) and the
few things the engines do differently: taking the write lock, erasing
deleted rows, and where large blobs live. SQL is written once, in the
subset both engines read the same way, with ``?`` placeholders.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import urlsplit, urlunsplit

from datawharf.states import ACTIVE_JOB_STATES, ANSWERED_TASK_STATES, OPEN_TASK_STATES, JobState, TaskState
from gateway.store.migrate import StoreVersionError

__all__ = ["ACTIVE_JOB_STATES", "JobRow", "OPEN_TASK_STATES", "Store", "StoreVersionError", "TaskRow", "display_url"]

# No LIMIT: SQLite reads -1 so and PostgreSQL refuses it; this is beyond any table.
NO_LIMIT = 2**62


def _sql_list(states: Iterable[str]) -> str:
    """An SQL list literal of state names, for queries that filter on a fixed set of states."""
    names = sorted(str(s) for s in states)
    # Only the enums' own names reach here, never input; anything that would need quoting is a mistake.
    if not all(n.isidentifier() for n in names):
        raise ValueError(f"not a state name: {names}")
    return "(" + ", ".join(f"'{n}'" for n in names) + ")"


ACTIVE_JOBS_SQL = _sql_list(ACTIVE_JOB_STATES)
_OPEN_TASKS = _sql_list(OPEN_TASK_STATES)
_ANSWERED_TASKS = _sql_list(ANSWERED_TASK_STATES)


def display_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: for messages and logs. The host part is kept as
    written (an IPv6 address in brackets, a mistyped port), since the message may be about it."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class JobRow:
    job_id: str
    buyer: str
    request_id: str
    kind: str
    backend: str
    spec: bytes
    state: str
    reason: str
    min_parties: int
    created_at: float
    deadline: float
    finished_at: float
    signed: bytes = b""  # the buyer's SignedJob, serialized; empty on an --insecure gateway
    owner: str = ""  # the replica running the job ("" with one gateway)
    lease_until: float = 0.0  # when another replica may take the job over, if its owner has not renewed


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    job_id: str
    party: str
    state: str
    reason: str


class Store:
    """All writes go through short transactions; callers hold no cursors."""

    _db: Any  # sqlite3.Connection, or gateway.store.postgres.Connection which reads the same way
    path: str  # names the database in messages (a file, or a URL without its password)
    ledger: Any  # gateway.ledger.Ledger once attached
    schema_version: int

    def close(self) -> None:
        self._db.close()

    @property
    def available(self) -> bool:
        """Whether the store answers now: a local file always does; a shared database may be away."""
        return True

    # what the engines do differently -------------------------------------------
    def _begin_write(self) -> None:
        """Open a transaction that holds the store's write lock from its first statement."""
        raise NotImplementedError

    def _erase_deleted(self) -> None:
        """Make deleted rows unrecoverable from the database's files, as far as the engine allows."""

    def _put_blob(self, job_id: str, task_id: str, payload: bytes) -> tuple[bytes, str]:
        """(what the row holds, the blob's name outside it, '' if kept in the row)."""
        return payload, ""

    def _get_blob(self, name: str) -> bytes:
        raise NotImplementedError

    def _drop_blobs(self, job_id: str) -> None:
        """Destroy a job's blobs kept outside rows."""

    # parties ---------------------------------------------------------------
    def upsert_party(self, name: str, listings: bytes, now: float | None = None, *, organisation: str = "",
                     serial: str = "") -> None:
        now = now or time.time()
        self._db.execute(
            "INSERT INTO parties (name, listings, first_seen, last_seen, organisation, serial) "
            "VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET listings = excluded.listings, last_seen = excluded.last_seen, "
            "organisation = excluded.organisation, serial = excluded.serial",
            (name, listings, now, now, organisation, serial),
        )

    def touch_party(self, name: str, now: float | None = None) -> None:
        self._db.execute("UPDATE parties SET last_seen = ? WHERE name = ?", (now or time.time(), name))

    def parties(self) -> list[sqlite3.Row]:
        return list(self._db.execute("SELECT * FROM parties ORDER BY name"))

    # jobs -------------------------------------------------------------------
    def find_job_by_request(self, buyer: str, request_id: str) -> JobRow | None:
        row = self._db.execute(
            "SELECT * FROM jobs WHERE buyer = ? AND request_id = ?", (buyer, request_id)
        ).fetchone()
        return JobRow(**dict(row)) if row else None

    def insert_job(self, job: JobRow, parties: list[tuple[str, str]]) -> None:
        """The job and one PENDING task per (task_id, party), atomically."""
        now = time.time()
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO jobs (job_id, buyer, request_id, kind, backend, spec, state, reason, min_parties, "
                "created_at, deadline, finished_at, signed, owner, lease_until) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.job_id, job.buyer, job.request_id, job.kind, job.backend, job.spec, job.state,
                    job.reason, job.min_parties, job.created_at, job.deadline, job.finished_at, job.signed,
                    job.owner, job.lease_until,
                ),
            )
            self._db.executemany(
                "INSERT INTO tasks (task_id, job_id, party, state, updated_at) VALUES (?, ?, ?, ?, ?)",
                [(tid, job.job_id, party, TaskState.PENDING, now) for tid, party in parties],
            )

    def job(self, job_id: str) -> JobRow | None:
        row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return JobRow(**dict(row)) if row else None

    def jobs(self, states: tuple[str, ...] | None = None) -> list[JobRow]:
        if states:
            marks = ",".join("?" * len(states))
            rows = self._db.execute(f"SELECT * FROM jobs WHERE state IN ({marks})", states)
        else:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created_at")
        return [JobRow(**dict(r)) for r in rows]

    def set_job_state(self, job_id: str, state: str, reason: str = "", finished: bool = False) -> None:
        self._db.execute(
            "UPDATE jobs SET state = ?, reason = ?, finished_at = ? WHERE job_id = ?",
            (state, reason, time.time() if finished else 0.0, job_id),
        )

    # tasks ------------------------------------------------------------------
    def tasks(self, job_id: str) -> list[TaskRow]:
        rows = self._db.execute(
            "SELECT task_id, job_id, party, state, reason FROM tasks WHERE job_id = ? ORDER BY party",
            (job_id,),
        )
        return [TaskRow(**dict(r)) for r in rows]

    def task(self, task_id: str) -> TaskRow | None:
        row = self._db.execute(
            "SELECT task_id, job_id, party, state, reason FROM tasks WHERE task_id = ?", (task_id,)
        ).fetchone()
        return TaskRow(**dict(row)) if row else None

    def open_tasks_for_party(self, party: str) -> list[TaskRow]:
        rows = self._db.execute(
            "SELECT t.task_id, t.job_id, t.party, t.state, t.reason FROM tasks t "
            "JOIN jobs j ON j.job_id = t.job_id "
            f"WHERE t.party = ? AND t.state IN {_OPEN_TASKS} AND j.state IN {ACTIVE_JOBS_SQL} "
            "ORDER BY j.created_at",
            (party,),
        )
        return [TaskRow(**dict(r)) for r in rows]

    def set_task_state(self, task_id: str, state: str, reason: str = "") -> None:
        self._db.execute(
            "UPDATE tasks SET state = ?, reason = ?, updated_at = ? WHERE task_id = ?",
            (state, reason, time.time(), task_id),
        )

    def set_dispatched_at(self, task_id: str, at: float) -> None:
        """A (re)sent task starts a fresh answer: the previous attempt's answer time and bytes are cleared."""
        self._db.execute("UPDATE tasks SET dispatched_at = ?, answered_at = 0, bytes = 0 WHERE task_id = ?",
                         (at, task_id))

    def set_answered_at(self, task_id: str, at: float, nbytes: int | None = None) -> None:
        """When the holder's answer came, and (if given) the bytes it carried."""
        if nbytes is None:
            self._db.execute("UPDATE tasks SET answered_at = ? WHERE task_id = ?", (at, task_id))
        else:
            self._db.execute("UPDATE tasks SET answered_at = ?, bytes = ? WHERE task_id = ?",
                             (at, nbytes, task_id))

    def add_task_bytes(self, task_id: str, nbytes: int) -> None:
        self._db.execute("UPDATE tasks SET bytes = bytes + ? WHERE task_id = ?", (nbytes, task_id))

    def task_details(self, job_id: str) -> list[sqlite3.Row]:
        """A job's tasks with their timings and byte counts, without receipts."""
        return list(self._db.execute(
            "SELECT task_id, party, state, reason, updated_at, dispatched_at, answered_at, bytes "
            "FROM tasks WHERE job_id = ? ORDER BY party", (job_id,)))

    def set_receipt(self, task_id: str, receipt: bytes) -> None:
        self._db.execute("UPDATE tasks SET receipt = ? WHERE task_id = ?", (receipt, task_id))

    def receipt(self, task_id: str) -> bytes:
        row = self._db.execute("SELECT receipt FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return bytes(row["receipt"]) if row else b""

    def receipts(self, job_id: str) -> list[bytes]:
        """The signed receipts of a job's accepted contributions, by party."""
        rows = self._db.execute(
            "SELECT receipt FROM tasks WHERE job_id = ? AND state = ? AND length(receipt) > 0 ORDER BY party",
            (job_id, TaskState.CONTRIBUTED))
        return [r["receipt"] for r in rows]

    def reset_dispatched(self) -> int:
        """After a restart no task is in flight any more: mark them for resending."""
        cur = self._db.execute(
            "UPDATE tasks SET state = ?, reason = 'gateway restarted; resending' "
            f"WHERE state = ? AND job_id IN (SELECT job_id FROM jobs WHERE state IN {ACTIVE_JOBS_SQL})",
            (TaskState.PENDING, TaskState.DISPATCHED),
        )
        return cur.rowcount

    # contributions and results ---------------------------------------------------
    def add_contribution(self, task_id: str, job_id: str, party: str, payload: bytes) -> bool:
        """Store a contribution and mark its task CONTRIBUTED; False if one exists.

        The key on task_id decides: a second answer to the same task, from
        whichever replica received it, adds nothing."""
        now = time.time()
        row_payload, blob = self._put_blob(job_id, task_id, payload)
        with self._db:
            self._db.execute("BEGIN")
            added = self._db.execute(
                "INSERT INTO contributions (task_id, job_id, payload, received_at, blob) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (task_id) DO NOTHING", (task_id, job_id, row_payload, now, blob)).rowcount
            if added != 1:
                return False
            self._db.execute(
                "UPDATE tasks SET state = ?, reason = '', updated_at = ? WHERE task_id = ?",
                (TaskState.CONTRIBUTED, now, task_id),
            )
            self._db.execute(
                "UPDATE parties SET contributions = contributions + 1 WHERE name = ?", (party,)
            )
        return True

    def contributions(self, job_id: str) -> list[tuple[str, bytes]]:
        rows = self._db.execute(
            "SELECT t.party, c.payload, c.blob FROM contributions c JOIN tasks t ON t.task_id = c.task_id "
            "WHERE c.job_id = ? ORDER BY t.party",
            (job_id,),
        ).fetchall()
        return [(r["party"], self._get_blob(r["blob"]) if r["blob"] else bytes(r["payload"])) for r in rows]

    def finish_job(self, job_id: str, result: bytes) -> bool:
        """Store the result, mark the job DONE and drop the per-holder ciphertexts; False (and nothing
        changed) if the job had already ended, which is how one job is never finished twice."""
        now = time.time()
        with self._db:
            self._db.execute("BEGIN")
            ended = self._db.execute(
                f"UPDATE jobs SET state = ?, reason = '', finished_at = ? WHERE job_id = ? AND state IN {ACTIVE_JOBS_SQL}",
                (JobState.DONE, now, job_id)).rowcount
            if ended != 1:
                return False
            self._db.execute(
                "INSERT INTO results (job_id, payload, created_at) VALUES (?, ?, ?) ON CONFLICT (job_id) "
                "DO UPDATE SET payload = excluded.payload, created_at = excluded.created_at", (job_id, result, now))
            self._db.execute("DELETE FROM contributions WHERE job_id = ?", (job_id,))
        self._drop_blobs(job_id)
        self._erase_deleted()
        return True

    def drop_contributions(self, job_id: str) -> None:
        """Destroy a job's per-holder ciphertexts (a job that failed or was cancelled keeps none)."""
        self._db.execute("DELETE FROM contributions WHERE job_id = ?", (job_id,))
        self._drop_blobs(job_id)
        self._erase_deleted()

    def result(self, job_id: str) -> bytes | None:
        row = self._db.execute("SELECT payload FROM results WHERE job_id = ?", (job_id,)).fetchone()
        return bytes(row["payload"]) if row else None

    def drop_result(self, job_id: str) -> bool:
        """Destroy a job's result (overwritten, WAL truncated); False if there was none."""
        gone = self._db.execute("DELETE FROM results WHERE job_id = ?", (job_id,)).rowcount > 0
        self._erase_deleted()
        return gone

    def results_before(self, created_before: float) -> list[str]:
        """Jobs whose result was stored before ``created_before``: past their lifetime."""
        rows = self._db.execute("SELECT job_id FROM results WHERE created_at < ?", (created_before,))
        return [r["job_id"] for r in rows]

    # replicas sharing one database ------------------------------------------------
    def replica_seen(self, name: str, now: float) -> None:
        self._db.execute("INSERT INTO replicas (name, seen_at) VALUES (?, ?) ON CONFLICT (name) "
                         "DO UPDATE SET seen_at = excluded.seen_at", (name, now))

    def live_replicas(self, since: float) -> list[str]:
        return [r["name"] for r in self._db.execute("SELECT name FROM replicas WHERE seen_at >= ?", (since,))]

    def set_party_replica(self, party: str, replica: str, *, only_if: str | None = None) -> None:
        """Which replica holds ``party``'s stream ("" for none); with ``only_if``, only if that one did."""
        if only_if is None:
            self._db.execute("UPDATE parties SET replica = ? WHERE name = ?", (replica, party))
        else:
            self._db.execute("UPDATE parties SET replica = ? WHERE name = ? AND replica = ?", (replica, party, only_if))

    def renew_leases(self, owner: str, until: float) -> int:
        return int(self._db.execute(
            f"UPDATE jobs SET lease_until = ? WHERE owner = ? AND state IN {ACTIVE_JOBS_SQL}", (until, owner)).rowcount)

    def claim_jobs(self, owner: str, now: float, until: float, limit: int = 64) -> list[str]:
        """Active jobs nobody holds a live lease on, now ``owner``'s. Rows another replica is claiming
        at this moment are skipped, not waited for (PostgreSQL's FOR UPDATE SKIP LOCKED)."""
        raise NotImplementedError("claiming jobs needs a store replicas share (PostgreSQL)")

    # the operator's view ----------------------------------------------------------
    def recent_jobs(self, limit: int = 50) -> list[sqlite3.Row]:
        """Recent jobs with their task tallies, without specs (which hold key material)."""
        # Per-job subqueries rather than a join and GROUP BY over all jobs, so that
        # only the newest `limit` rows are read (index jobs_created).
        return list(self._db.execute(
            "SELECT j.job_id, j.buyer, j.kind, j.backend, j.state, j.reason, j.created_at, j.finished_at, "
            "(SELECT COUNT(*) FROM tasks t WHERE t.job_id = j.job_id) AS expected, "
            "(SELECT COUNT(*) FROM tasks t WHERE t.job_id = j.job_id "
            f"AND t.state IN {_ANSWERED_TASKS}) AS answered, "
            "(SELECT COUNT(*) FROM tasks t WHERE t.job_id = j.job_id "
            f"AND t.state = '{TaskState.CONTRIBUTED}') AS contributed "
            "FROM jobs j ORDER BY j.created_at DESC LIMIT ?",
            (limit,),
        ))

    def finished_since(self, since: float) -> list[sqlite3.Row]:
        return list(self._db.execute(
            "SELECT kind, backend, state, created_at, finished_at FROM jobs WHERE finished_at >= ? "
            "ORDER BY finished_at", (since,)))

    def job_counts(self) -> list[sqlite3.Row]:
        return list(self._db.execute("SELECT kind, state, COUNT(*) AS n FROM jobs GROUP BY kind, state"))

    # events -------------------------------------------------------------------
    def record(self, kind: str, *, job_id: str = "", task_id: str = "", party: str = "", detail: str = "",
               evidence: dict[str, Any] | None = None,
               also: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """An event, and with a ledger attached its signed entry in the same transaction: an entry
        that cannot be written fails the event (and the operation that records it). ``also`` writes
        the rows the event is about inside that transaction, so neither lands without the other."""
        with self._db:
            if self.ledger is not None:
                # Entries are a chain: take the write lock first, then pick up entries another
                # replica appended since, so this one links to the true head.
                self._begin_write()
                self._follow_ledger()
            else:
                self._db.execute("BEGIN")
            if also is not None:
                also(self._db)
            self._db.execute(
                "INSERT INTO events (at, kind, job_id, task_id, party, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), kind, job_id, task_id, party, detail),
            )
            if self.ledger is not None:
                fields: dict[str, Any] = {k: v for k, v in (("job_id", job_id), ("task_id", task_id),
                                                             ("party", party), ("detail", detail)) if v}
                fields.update(evidence or {})
                self.ledger.append(kind, fields, lambda seq, line: self._insert_entry(seq, line, job_id))

    def _follow_ledger(self) -> None:
        row = self._db.execute("SELECT seq, entry FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None and int(row["seq"]) + 1 != self.ledger.seq:
            self.ledger.follow(row["entry"])

    def _insert_entry(self, seq: int, line: str, job_id: str = "") -> None:
        self._db.execute("INSERT INTO ledger (seq, job_id, entry) VALUES (?, ?, ?)", (seq, job_id, line))

    def job_ledger_lines(self, job_id: str) -> list[str]:
        """The genesis and the entries about ``job_id``, in order (by index, not by a scan)."""
        genesis = self._db.execute("SELECT entry FROM ledger WHERE seq = 0").fetchall()
        rows = self._db.execute("SELECT entry FROM ledger WHERE job_id = ? ORDER BY seq", (job_id,)) if job_id else []
        return [r["entry"] for r in [*genesis, *rows]]

    def ledger_lines(self) -> list[str]:
        """The ledger's entries in order, one JSON line each."""
        return [r["entry"] for r in self._db.execute("SELECT entry FROM ledger ORDER BY seq")]

    def attach_ledger(self, open_ledger: Callable[[list[str], Callable[[int, str], None]], Any]) -> None:
        """Open the ledger over this store's entries; from now on every event is also an entry."""
        with self._db:
            self._begin_write()
            self.ledger = open_ledger(self.ledger_lines(), self._insert_entry)

    def job_events(self, job_id: str) -> list[sqlite3.Row]:
        """A job's events in order, including those recorded against one of its tasks only
        (a rejected message names the task, not the job)."""
        return list(self._db.execute(
            "SELECT * FROM events WHERE job_id = ? "
            "OR (job_id = '' AND task_id IN (SELECT task_id FROM tasks WHERE job_id = ?)) ORDER BY seq",
            (job_id, job_id)))

    def events(self, kind: str | None = None) -> Iterator[sqlite3.Row]:
        if kind:
            return iter(self._db.execute("SELECT * FROM events WHERE kind = ? ORDER BY seq", (kind,)))
        return iter(self._db.execute("SELECT * FROM events ORDER BY seq"))

    # the market ------------------------------------------------------------------
    def record_linked(self, kind: str, rows: Callable[[int], Iterable[tuple[str, tuple[Any, ...]]]], *,
                      job_id: str = "", party: str = "", detail: str = "",
                      evidence: dict[str, Any] | None = None) -> int:
        """``record``, with the statements ``rows(seq)`` gives run in the same transaction: they can
        name the ledger entry (its seq; 0 without a ledger) that records them, and neither lands
        without the other. Returns the seq."""
        seq = 0

        def also(db: Any) -> None:
            nonlocal seq
            # Inside the transaction, after the ledger caught up: the seq the entry will get.
            seq = self.ledger.seq if self.ledger is not None else 0
            for sql, params in rows(seq):
                db.execute(sql, params)

        self.record(kind, job_id=job_id, party=party, detail=detail, evidence=evidence, also=also)
        return seq

    def listing_version(self, holder: str, dataset: str) -> int:
        """The newest version number of a holder's listing of ``dataset`` (0: none yet)."""
        row = self._db.execute("SELECT MAX(version) AS v FROM listings WHERE holder = ? AND dataset = ?",
                               (holder, dataset)).fetchone()
        return int(row["v"] or 0)

    def listing(self, listing_id: str) -> sqlite3.Row | None:
        return self._db.execute("SELECT * FROM listings WHERE listing_id = ?", (listing_id,)).fetchone()

    def listings(self, *, state: str = "", holder: str = "", listing_id: str = "", limit: int = -1,
                 offset: int = 0) -> list[sqlite3.Row]:
        sql, args = self._listings_where(state, holder, listing_id)
        return list(self._db.execute(f"SELECT * FROM listings {sql} ORDER BY holder, dataset, version "
                                     "LIMIT ? OFFSET ?", [*args, limit if limit >= 0 else NO_LIMIT, offset]))

    def count_listings(self, *, state: str = "", holder: str = "", listing_id: str = "") -> int:
        sql, args = self._listings_where(state, holder, listing_id)
        return int(self._db.execute(f"SELECT COUNT(*) FROM listings {sql}", args).fetchone()[0])

    @staticmethod
    def _listings_where(state: str, holder: str, listing_id: str) -> tuple[str, list[Any]]:
        sql, args = "WHERE 1 = 1", list[Any]()
        for column, value in (("state", state), ("holder", holder), ("listing_id", listing_id)):
            if value:
                sql, args = sql + f" AND {column} = ?", [*args, value]
        return sql, args

    def listing_decisions(self, listing_id: str) -> list[sqlite3.Row]:
        return list(self._db.execute("SELECT * FROM listing_decisions WHERE listing_id = ? ORDER BY seq",
                                     (listing_id,)))

    def foreign_listings(self) -> list[sqlite3.Row]:
        return list(self._db.execute("SELECT * FROM foreign_listings ORDER BY home, holder, dataset"))

    def charges(self, *, holder: str | None = None, buyer: str | None = None, start: float = 0.0,
                end: float = float("inf"), job_id: str | None = None) -> list[sqlite3.Row]:
        """Charge lines (holders' and fees) in [start, end), oldest first, filtered as asked."""
        return charge_rows(self._db, holder=holder, buyer=buyer, start=start, end=end, job_id=job_id)


def charge_rows(db: sqlite3.Connection, *, holder: str | None = None, buyer: str | None = None, start: float = 0.0,
                end: float = float("inf"), job_id: str | None = None) -> list[sqlite3.Row]:
    """``SqliteStore.charges`` over any connection: `wharf billing statement --data-dir` reads a
    gateway's file read-only with it."""
    sql, args = "SELECT * FROM charges WHERE at >= ? AND at < ?", list[Any]([start, min(end, 1e18)])
    for column, value in (("holder", holder), ("buyer", buyer), ("job_id", job_id)):
        if value is not None:
            sql, args = sql + f" AND {column} = ?", [*args, value]
    return list(db.execute(sql + " ORDER BY at, job_id, kind DESC, holder", args))
