"""A TCP load balancer for local exchanges: gateway replicas behind one address.

Production exchanges put their replicas behind whatever balancer they run
(HAProxy, nginx's stream module, a cloud's TCP balancer); gateways need
nothing from it but TCP. A local exchange with several replicas uses this
one so that buyers and holders see one address, as they would in
production: each new connection goes to the next replica that accepts it,
so when a replica dies its parties' reconnections land on the others.

    python -m wharf.balancer --listen 127.0.0.1:0 --ready FILE 127.0.0.1:7001 127.0.0.1:7002
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
from pathlib import Path

__all__ = ["Balancer", "main"]

CONNECT_TIMEOUT_S = 2.0
CHUNK = 1 << 16


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class Balancer:
    def __init__(self, backends: list[str]) -> None:
        if not backends:
            raise ValueError("a balancer needs at least one backend address")
        self.backends = backends
        self._next = itertools.cycle(range(len(backends)))

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.backends)):
            host, port = _split(self.backends[next(self._next)])
            try:
                return await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError):
                continue  # a replica that is down: the next one
        return None

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:
            client_w.close()
            return
        server_r, server_w = upstream

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(CHUNK):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))


async def serve(listen: str, backends: list[str], ready: Path | None) -> None:
    balancer = Balancer(backends)
    host, port = _split(listen)
    server = await asyncio.start_server(balancer.handle, host, port)
    address = server.sockets[0].getsockname()
    if ready is not None:
        ready.write_text(json.dumps({"address": f"{address[0]}:{address[1]}", "backends": backends}))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wharf.balancer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:0", help="address to accept connections on")
    parser.add_argument("--ready", type=Path, help="write the address listened on here, as JSON")
    parser.add_argument("backends", nargs="+", help="gateway replicas, host:port")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.listen, args.backends, args.ready))


if __name__ == "__main__":
    main()
