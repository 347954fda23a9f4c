"""The seam between the job logic and the network.

The job logic only ever asks "is this party online?" and "send it this
domain message". ``StreamDispatcher`` answers over the parties' gRPC
streams (turning messages into protobuf at the last moment);
``InMemoryDispatcher`` keeps what was sent in a list, so the job logic is
tested whole without sockets.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from datawharf.errors import AlreadyExists, WharfError
from datawharf.messages import Notice, TaskOffer, ToParty
from datawharf.serde import to_party_to_proto
from datawharf.v1 import party_pb2


class Dispatcher(Protocol):
    def is_online(self, party: str) -> bool: ...

    def online(self) -> list[str]: ...

    def disconnect(self, party: str) -> None: ...

    def send(self, party: str, message: ToParty) -> bool:
        """Queue a message for a party; False if it is not connected."""
        ...


class PartySession:
    """One connected party stream: an outbox the servicer drains."""

    def __init__(self, party: str) -> None:
        self.party = party
        self.outbox: asyncio.Queue[party_pb2.GatewayMessage | None] = asyncio.Queue()
        self.closed = asyncio.Event()
        # Why the gateway ended the stream (a limit the party broke), for its status; None otherwise.
        self.error: WharfError | None = None

    def close(self) -> None:
        self.closed.set()
        self.outbox.put_nowait(None)


class StreamDispatcher:
    def __init__(self) -> None:
        self._sessions: dict[str, PartySession] = {}

    def attach(self, party: str) -> PartySession:
        """A new stream for ``party``; AlreadyExists while another one is live.

        The first stream keeps the name: a newcomer must not take over a
        holder's tasks (a node that restarted retries after its old stream
        is gone, which on a dead process is at once and otherwise within
        the keepalive timeout)."""
        if party in self._sessions:
            raise AlreadyExists(
                f"a stream for {party!r} is already open; stop the other node with this name, "
                "or retry once its connection has closed")
        session = PartySession(party)
        self._sessions[party] = session
        return session

    def detach(self, session: PartySession) -> bool:
        """Forget a stream; True if it was the party's current one."""
        session.close()
        if self._sessions.get(session.party) is session:
            del self._sessions[session.party]
            return True
        return False

    def is_online(self, party: str) -> bool:
        return party in self._sessions

    def disconnect(self, party: str) -> None:
        """End a party's stream (its certificate was revoked)."""
        session = self._sessions.get(party)
        if session is not None:
            session.close()

    def online(self) -> list[str]:
        return sorted(self._sessions)

    def backlog(self, party: str) -> int:
        """Messages queued for ``party``'s stream and not yet taken by it (0 without a stream)."""
        session = self._sessions.get(party)
        return session.outbox.qsize() if session is not None else 0

    def send(self, party: str, message: ToParty) -> bool:
        session = self._sessions.get(party)
        if session is None:
            return False
        session.outbox.put_nowait(to_party_to_proto(message))
        return True


class InMemoryDispatcher:
    """Parties that are online by decree; every message sent is kept in ``sent``."""

    def __init__(self, online: tuple[str, ...] = ()) -> None:
        self._online: set[str] = set(online)
        self.sent: list[tuple[str, ToParty]] = []

    def connect(self, party: str) -> None:
        self._online.add(party)

    def disconnect(self, party: str) -> None:
        self._online.discard(party)

    def is_online(self, party: str) -> bool:
        return party in self._online

    def online(self) -> list[str]:
        return sorted(self._online)

    def send(self, party: str, message: ToParty) -> bool:
        if party not in self._online:
            return False
        self.sent.append((party, message))
        return True

    def to(self, party: str) -> list[ToParty]:
        return [m for p, m in self.sent if p == party]

    def tasks_for(self, party: str) -> list[TaskOffer]:
        return [m for m in self.to(party) if isinstance(m, TaskOffer)]

    def notices_for(self, party: str) -> list[Notice]:
        return [m for m in self.to(party) if isinstance(m, Notice)]


__all__ = ["Dispatcher", "InMemoryDispatcher", "PartySession", "StreamDispatcher"]
