"""The seam between orchestration and the network.

The orchestrator only ever asks "is this party online?" and "send it this";
``StreamDispatcher`` answers over the parties' gRPC streams, and tests can
pass any object with the same two methods.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from datawharf.v1 import party_pb2


class Dispatcher(Protocol):
    def is_online(self, party: str) -> bool: ...

    def send(self, party: str, message: party_pb2.GatewayMessage) -> bool:
        """Queue a message for a party; False if it is not connected."""
        ...


class PartySession:
    """One connected party stream: an outbox the servicer drains."""

    def __init__(self, party: str) -> None:
        self.party = party
        self.outbox: asyncio.Queue[party_pb2.GatewayMessage | None] = asyncio.Queue()
        self.closed = asyncio.Event()

    def close(self) -> None:
        self.closed.set()
        self.outbox.put_nowait(None)


class StreamDispatcher:
    def __init__(self) -> None:
        self._sessions: dict[str, PartySession] = {}

    def attach(self, party: str) -> PartySession:
        """A new stream for ``party``; an older one is closed (the newest wins,
        so a node that reconnects before its old stream timed out is served)."""
        old = self._sessions.get(party)
        if old is not None:
            old.close()
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

    def online(self) -> list[str]:
        return sorted(self._sessions)

    def send(self, party: str, message: party_pb2.GatewayMessage) -> bool:
        session = self._sessions.get(party)
        if session is None:
            return False
        session.outbox.put_nowait(message)
        return True
