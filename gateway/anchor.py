"""Publishing the ledger's head to a time-stamping authority, so its date is witnessed outside.

Every ``every_s`` seconds, if the ledger has grown, the head's hash is sent
as an RFC 3161 time-stamp request (``application/timestamp-query``) to the
configured URL; the reply's token is kept under ``DATA_DIR/anchors/`` and an
``anchored`` entry records the head, the authority and the token's digest.
A refused or failed request is logged and retried at the next interval; the
ledger goes on either way. With no URL configured nothing is sent and the
head is still exported with ``wharf audit export`` for anyone to publish.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import urllib.request
from pathlib import Path

from datawharf.pki import write_private
from datawharf.tsp import GRANTED, TspError, request, response_status
from gateway.store import SqliteStore

log = logging.getLogger("datawharf.gateway")
MAX_REPLY_BYTES = 64 << 10

__all__ = ["Anchor"]


class Anchor:
    def __init__(self, url: str, store: SqliteStore, folder: Path, *, timeout_s: float = 10.0) -> None:
        self.url = url
        self.store = store
        self.folder = folder
        self.timeout_s = timeout_s
        self.anchored_seq = -1

    def _post(self, query: bytes) -> bytes:
        req = urllib.request.Request(self.url, data=query, headers={"Content-Type": "application/timestamp-query"})
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - the operator's URL
            return bytes(resp.read(MAX_REPLY_BYTES + 1))

    async def once(self) -> bool:
        """Anchor the current head if it is new; True if a token was kept."""
        ledger = self.store.ledger
        if ledger is None:
            return False
        seq, head, _ = ledger.current()
        if seq <= self.anchored_seq:
            return False
        try:
            reply = await asyncio.to_thread(self._post, request(bytes.fromhex(head), secrets.randbits(63)))
            if len(reply) > MAX_REPLY_BYTES:
                raise TspError(f"the reply is larger than {MAX_REPLY_BYTES} bytes")
            status = response_status(reply)
            if status not in GRANTED:
                raise TspError(f"the time-stamping authority refused (status {status})")
        except (OSError, TspError) as exc:
            log.warning("anchoring ledger head %d at %s failed: %s; retrying later", seq, self.url, exc)
            return False
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(self.folder / f"head-{seq:012d}.tsr", reply)
        self.store.record("anchored", detail=f"head {seq} at {self.url}",
                          evidence={"head_seq": seq, "head_hash": head, "tsa": self.url,
                                    "token_digest": hashlib.sha256(reply).hexdigest()})
        self.anchored_seq = seq + 1  # the anchored entry itself need not be anchored again
        return True

    async def run(self, stop: asyncio.Event, every_s: float) -> None:
        while not stop.is_set():
            try:
                await self.once()
            except Exception:
                log.exception("anchoring failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=every_s)
            except asyncio.TimeoutError:
                pass
