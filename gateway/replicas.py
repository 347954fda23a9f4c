"""Gateway replicas sharing one PostgreSQL database.

Any replica takes any call: a buyer's submission, a party's stream. What
must happen in one place happens at the job's *owner*: the replica that
opened the job, for as long as it renews its lease; a replica whose leases
lapsed (it died, or lost the database) has its jobs claimed by the others
with ``FOR UPDATE SKIP LOCKED``, so each job has one owner and no row is
waited on. Contributions are stored by whichever replica receives them,
once per task (the row's key), and the owner sums them.

Work crosses replicas through PostgreSQL's LISTEN/NOTIFY, on one channel,
as small JSON messages:

- ``job``: a job changed (watchers on every replica wake);
- ``eval``: a task of the owner's job was answered elsewhere; evaluate it;
- ``work``: a party has open tasks; the replica holding its stream offers them;
- ``say``: a notice or cancellation for a party whose stream is elsewhere;
- ``parties``: a party came or went; refresh who is online where.

A lost notification costs latency, not correctness: owners re-evaluate
their jobs at every tick, and presence is re-read from the table.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any, Callable

import psycopg

from datawharf.errors import AlreadyExists
from datawharf.messages import CancelTask, Notice, TaskOffer, ToParty
from gateway.dispatch import PartySession, StreamDispatcher
from gateway.store.postgres import PostgresStore

log = logging.getLogger("datawharf.gateway")

CHANNEL = "wharf"
# NOTIFY payloads are limited to 8000 bytes; a notice's text is cut well below that.
MAX_TEXT = 2000

__all__ = ["CHANNEL", "ReplicaDispatcher", "Replicas"]


class Replicas:
    """This replica's place among the others: its name, the leases it holds, who is online where."""

    def __init__(self, store: PostgresStore, name: str, *, lease_s: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        if not name or len(name) > 200:
            raise ValueError("a replica needs a name of 1-200 characters")
        self.store = store
        self.name = name
        self.lease_s = lease_s
        self.clock = clock
        self.remote: dict[str, str] = {}  # party -> the replica holding its stream, for streams held elsewhere
        self.handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ listening
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Listen on the channel in a thread of its own (psycopg's notifies() blocks), handing each
        message to the event loop."""
        self._loop = loop
        self._thread = threading.Thread(target=self._listen, name="wharf-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _listen(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.store.url, autocommit=True, connect_timeout=5,
                                     application_name=f"wharf-listen-{self.name}") as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    delay = 0.2
                    # Anything said while not listening is caught up by the next tick.
                    self._post({"k": "parties"})
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._post_raw(note.payload)
            except psycopg.OperationalError as exc:
                log.warning("replica %s: listening connection lost (%s); retrying", self.name, exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _post_raw(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if isinstance(message, dict):
            self._post(message)

    def _post(self, message: dict[str, Any]) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._deliver, message)

    def _deliver(self, message: dict[str, Any]) -> None:
        if message.get("from") == self.name:
            return
        to = message.get("to")
        if to and to != self.name:
            return
        handler = self.handlers.get(str(message.get("k")))
        if handler is not None:
            try:
                handler(message)
            except Exception:  # one bad message must not stop the others
                log.exception("replica %s: handling %s failed", self.name, message.get("k"))

    def say(self, kind: str, **fields: Any) -> None:
        """Tell the other replicas (best effort: a store that is away drops it, the tick catches up)."""
        try:
            self.store._db.notify(CHANNEL, json.dumps({"k": kind, "from": self.name, **fields}))
        except Exception as exc:  # noqa: BLE001 - the store reports its own unavailability
            log.warning("replica %s: could not tell the others (%s): %s", self.name, kind, exc)

    # -------------------------------------------------------------------- leases
    def heartbeat(self) -> list[str]:
        """Say this replica is alive, renew its leases, claim lapsed jobs; the jobs newly claimed.
        A replica whose store is away claims nothing (and its own leases lapse for others to take)."""
        if not self.store.available:
            return []
        now = self.clock()
        self.store.replica_seen(self.name, now)
        self.store.renew_leases(self.name, now + self.lease_s)
        claimed = self.store.claim_jobs(self.name, now, now + self.lease_s)
        if claimed:
            log.info("replica %s: took over %d job(s) whose owner stopped renewing: %s", self.name, len(claimed),
                     ", ".join(claimed))
        self.refresh()
        return claimed

    def refresh(self) -> None:
        """Re-read which parties are online at which live replica."""
        live = set(self.store.live_replicas(self.clock() - 2 * self.lease_s))
        rows = self.store._db.execute("SELECT name, replica FROM parties WHERE replica <> ''").fetchall()
        self.remote = {r["name"]: r["replica"] for r in rows if r["replica"] != self.name and r["replica"] in live}


class ReplicaDispatcher:
    """The orchestrator's dispatcher across replicas: streams held here are used directly; a party
    whose stream another replica holds is reached through that replica."""

    def __init__(self, local: StreamDispatcher, replicas: Replicas) -> None:
        self.local = local
        self.replicas = replicas

    def attach(self, party: str) -> PartySession:
        """A stream for ``party`` here; AlreadyExists while another live replica holds one (the first
        stream keeps the name, across replicas as within one)."""
        host = self.replicas.remote.get(party)
        if host is not None:
            raise AlreadyExists(f"a stream for {party!r} is already open at gateway replica {host}; stop the other "
                                "node with this name, or retry once its connection has closed")
        return self.local.attach(party)

    def detach(self, session: PartySession) -> bool:
        return self.local.detach(session)

    def holds(self, party: str) -> bool:
        return self.local.is_online(party)

    def backlog(self, party: str) -> int:
        return self.local.backlog(party)

    def is_online(self, party: str) -> bool:
        return self.local.is_online(party) or party in self.replicas.remote

    def online(self) -> list[str]:
        return sorted(set(self.local.online()) | set(self.replicas.remote))

    def disconnect(self, party: str) -> None:
        self.local.disconnect(party)

    def send(self, party: str, message: ToParty) -> bool:
        if self.local.is_online(party):
            return self.local.send(party, message)
        host = self.replicas.remote.get(party)
        if host is None:
            return False
        if isinstance(message, TaskOffer):
            # The replica holding the stream builds and sends the offer itself (and marks it sent);
            # here nothing was sent.
            self.replicas.say("work", to=host, party=party)
            return False
        if isinstance(message, Notice):
            self.replicas.say("say", to=host, party=party, what="notice", task=message.task_id,
                              text=message.message[:MAX_TEXT])
            return True
        if isinstance(message, CancelTask):
            self.replicas.say("say", to=host, party=party, what="cancel", task=message.task_id,
                              text=message.reason[:MAX_TEXT])
            return True
        return False
