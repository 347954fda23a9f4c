"""The gateway's ledger: appends signed, hash-chained entries beside the job store.

Every event the store records (``SqliteStore.record``) is appended in the
same transaction, with the evidence its caller passes (a buyer's job
signature, a holder's receipt, a result's digest). The Ed25519 key lives in
the data directory (0600); when the gateway has a certificate, the genesis
entry binds the key to it. At start the whole chain is checked: a ledger
that does not verify stops the gateway, naming the entry, rather than
starting a new chain.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from datawharf.ledger import ZERO, Entry, LedgerError, bind_key, make_entry, parse_lines, verify
from datawharf.pki import Credentials, write_private

log = logging.getLogger("datawharf.gateway")

KEY_FILE = "ledger.key"

__all__ = ["Ledger", "LedgerError"]


class Ledger:
    """Appends entries through ``insert(seq, line)`` (the store's, inside its transaction)."""

    def __init__(self, key: Ed25519PrivateKey, entries: list[Entry], *, clock: Callable[[], float] = time.time
                 ) -> None:
        self.key = key
        self.clock = clock
        self.seq = len(entries)
        self.head = entries[-1].hash if entries else ZERO
        self.head_sig = entries[-1].sig if entries else ""

    @classmethod
    def open(cls, data_dir: Path, lines: list[str], creds: Credentials | None,
             insert: Callable[[int, str], None]) -> "Ledger":
        """The ledger of ``data_dir``: its key (made on first start) and its entries, verified."""
        path = data_dir / KEY_FILE
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(key, Ed25519PrivateKey)
        elif lines:
            raise LedgerError(f"the ledger has {len(lines)} entries but its key {path} is missing; restore it "
                              "from a backup (a new key would start a chain nobody can tie to this one)")
        else:
            key = Ed25519PrivateKey.generate()
            write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
        entries = list(parse_lines(lines))
        if entries:
            report = verify(entries)  # the chain and our own signatures; CA checks are the auditor's
            log.info("ledger verified: %d entries, head %s", report.entries, report.head[:16])
        ledger = cls(key, entries)
        if not entries:
            fields: dict[str, Any] = {"ledger_key": key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()}
            if creds is not None:
                fields = bind_key(key.public_key(), creds.cert_pem, creds.key)
            ledger.append("genesis", fields, insert)
        return ledger

    def append(self, kind: str, fields: dict[str, Any], insert: Callable[[int, str], None]) -> Entry:
        entry = make_entry(self.key, self.seq, round(self.clock(), 6), kind, fields, self.head)
        insert(entry.seq, entry.line())
        self.seq, self.head, self.head_sig = entry.seq + 1, entry.hash, entry.sig
        return entry

    def follow(self, line: str) -> None:
        """Continue after ``line``, the newest entry another replica sharing this key appended."""
        (entry,) = parse_lines([line])
        if entry.seq + 1 < self.seq:
            raise LedgerError(f"the ledger's newest entry is {entry.seq}, behind this gateway's {self.seq - 1}: "
                              "entries were removed", entry.seq)
        self.seq, self.head, self.head_sig = entry.seq + 1, entry.hash, entry.sig

    def current(self) -> tuple[int, str, str]:
        """(seq, hash, signature) of the newest entry: the head holders witness."""
        return self.seq - 1, self.head, self.head_sig
