"""Record every message the gateway receives and sends, for privacy audits.

``wharf gateway serve --wire-log FILE`` appends one JSON line per message:
method, direction, caller, message type and its serialized bytes (base64).
It holds only what crossed the wire, which is everything the gateway saw; the
privacy tests read it to show that no raw value ever did.
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
    def __init__(self, path: Path) -> None:
        super().__init__(self._record)
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

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
