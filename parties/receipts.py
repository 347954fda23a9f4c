"""A holder's own record of every use of its data: the witness the gateway cannot rewrite.

One JSON line per event in ``receipts.jsonl`` under the node's state
directory (0600): each task offered (with the ledger head the gateway stated
for it), each contribution (with the digest the holder signed) and each
refusal (with its reason). ``wharf party receipts`` lists them;
``wharf audit verify --receipts FILE`` checks that the ledger agrees: every
head is in the chain as stated, and every contribution and refusal is there.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

FILE = "receipts.jsonl"

__all__ = ["ReceiptBook", "read_receipts"]


class ReceiptBook:
    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = state_dir / FILE

    def add(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"at": round(time.time(), 6), "kind": kind, **fields}, sort_keys=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def read_receipts(path: Path) -> Iterator[dict[str, Any]]:
    """The receipts in ``path`` (a receipts.jsonl, or a state directory holding one)."""
    if path.is_dir():
        path = path / FILE
    for line in path.read_text().splitlines():
        if line.strip():
            yield json.loads(line)
