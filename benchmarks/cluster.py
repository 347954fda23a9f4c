"""A gateway and N party processes on loopback, with generated datasets."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from wharf.local import LocalExchange, wait_for


class Cluster(LocalExchange):
    """Starts ``gateway serve`` and one ``party serve`` per config maker call."""

    def __init__(self, parties: int, write_party: Callable[[Path, int, str], str], *, workdir: Path | None = None,
                 http: bool = False, insecure: bool = False, gateway_args: tuple[str, ...] = (),
                 open_market: Callable[["Cluster"], None] | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="wharf-bench-") if workdir is None else None
        root = Path(self._tmp.name) if self._tmp else workdir
        assert root is not None
        # Listing review off (LocalExchange's default) unless the benchmark opens a market: then
        # ``open_market`` lists and approves the holders' datasets before anything waits for them.
        super().__init__(root, log_level="warning", insecure=insecure, review=open_market is not None)
        self.open_market = open_market
        self.with_http = http
        self.gateway_args = gateway_args
        self.http = ""
        self.n = parties
        self.write_party = write_party
        self.names = [f"holder-{i:02d}" for i in range(parties)]

    def __enter__(self) -> "Cluster":
        self.start_gateway(*(["--http", "127.0.0.1:0"] if self.with_http else []), *self.gateway_args)
        self.http = self.http_address
        for i, name in enumerate(self.names):
            self.start_party(name, self.write_party(self.root, i, self.address))
        if self.open_market is not None:
            self.open_market(self)
        with self.client("bench") as c:
            def online() -> bool:
                items = c.catalog()
                return bool(items) and all(len(i.holders_online) == self.n for i in items)

            wait_for(f"{self.n} party nodes", online, 120, self.alive)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._tmp:
            self._tmp.cleanup()
