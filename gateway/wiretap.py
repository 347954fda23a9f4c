"""Record every message the gateway receives and sends, for privacy audits.

``wharf gateway serve --wire-log FILE`` appends one JSON line per message:
method, direction, caller, message type and its serialized bytes (base64).
It holds only what crossed the wire, which is everything the gateway saw; the
privacy tests read it to show that no raw value ever did. It is off unless
asked for, and rotated: past ``max_bytes`` the file becomes FILE.1 (FILE.1
becomes FILE.2, ...) and the oldest beyond ``keep`` is removed, so a
forgotten wire log neither fills the disk nor keeps ciphertexts forever.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

from gateway.interceptors import MessageInterceptor


class WireTap(MessageInterceptor):
    def __init__(self, path: Path, *, max_bytes: int = 256 << 20, keep: int = 3) -> None:
        super().__init__(self._record)
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def _rotate(self) -> None:
        self._file.close()
        self.path.with_name(f"{self.path.name}.{self.keep}").unlink(missing_ok=True)
        for n in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.rename(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.keep > 0:
            self.path.rename(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def close(self) -> None:
        self._file.close()

    def _record(self, method: str, caller: str, direction: str, message: Any) -> None:
        line = json.dumps(
            {
                "at": time.time(),
                "method": method,
                "caller": caller,
                "direction": direction,
                "type": message.DESCRIPTOR.full_name,
                "bytes": base64.b64encode(message.SerializeToString()).decode(),
            }
        )
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            if self._file.tell() > self.max_bytes:
                self._rotate()
