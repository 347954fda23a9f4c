"""A gateway and N party processes on loopback, with generated datasets."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Callable

from datawharf.demo import Processes, wait_for
from gateway.client import Client


class Cluster:
    """Starts ``gateway serve`` and one ``party serve`` per config maker call."""

    def __init__(self, parties: int, write_party: Callable[[Path, int, str], str], *, workdir: Path | None = None,
                 http: bool = False) -> None:
        self.with_http = http
        self.http = ""
        self._tmp = tempfile.TemporaryDirectory(prefix="wharf-bench-") if workdir is None else None
        self.root = Path(self._tmp.name) if self._tmp else workdir  # type: ignore[assignment]
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "logs").mkdir(exist_ok=True)
        self.procs = Processes(self.root / "logs")
        self.n = parties
        self.write_party = write_party
        self.address = ""
        self.names = [f"holder-{i:02d}" for i in range(parties)]

    def _alive(self) -> None:
        for name, p in self.procs.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}; see {self.root / 'logs' / (name + '.log')}")

    def __enter__(self) -> "Cluster":
        ready = self.root / "gateway" / "gateway.json"
        extra = ["--http", "127.0.0.1:0"] if self.with_http else []
        self.procs.start("gateway", "gateway", "serve", "--listen", "127.0.0.1:0",
                         "--data-dir", str(self.root / "gateway"), "--log-level", "warning", *extra)
        wait_for("the gateway", ready.exists, 30, self._alive)
        info = json.loads(ready.read_text())
        self.address, self.http = info["address"], info.get("http", "")
        for i, name in enumerate(self.names):
            cfg = self.root / f"{name}.toml"
            cfg.write_text(self.write_party(self.root, i, self.address))
            self.procs.start(name, "party", "serve", "--config", str(cfg), "--log-level", "warning")
        with Client(self.address, caller="bench") as c:
            def online() -> bool:
                return all(len(i.holders_online) == self.n for i in c.catalog()) and bool(c.catalog())
            wait_for(f"{self.n} party nodes", online, 120, self._alive)
        return self

    def __exit__(self, *exc: object) -> None:
        self.procs.stop()
        if self._tmp:
            self._tmp.cleanup()
