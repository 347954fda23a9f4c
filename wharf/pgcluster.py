"""A throw-away PostgreSQL cluster for tests and benchmarks: initdb into a
temporary folder, started on a free loopback port, removed afterwards.

Debian's server binaries live in /usr/lib/postgresql/N/bin, off PATH. The
server refuses to run as root, so as root the cluster belongs to the
``postgres`` user that Debian's package creates.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def server_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parents[1].name) if Path(p).parents[1].name.isdigit() else 0)
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One server; each ``database()`` is a new, empty database in it."""

    def __init__(self) -> None:
        initdb, pg_ctl = server_bin("initdb"), server_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise FileNotFoundError("PostgreSQL's server (initdb, pg_ctl) is not installed: "
                                    "apt-get install postgresql")
        self._pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="wharf-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._counter = itertools.count(1)
        self._run([initdb, "-D", str(self.data), "-U", "wharf", "-A", "trust", "-E", "UTF8", "--no-sync",
                   "--no-instructions"])
        self.resume()

    def resume(self) -> None:
        """Start the server (again, after ``pause``) on the same port."""
        # Small and quick: no fsync (a test cluster is thrown away), sockets only on loopback.
        self._run([self._pg_ctl, "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                   "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200", "start"])

    def pause(self) -> None:
        """Stop the server, cutting every client's connection (a fast shutdown: the thrown-away cluster
        runs without fsync, so a crash would lose what clients wrote)."""
        self._run([self._pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def _run(self, argv: list[str]) -> None:
        if self._user:
            argv = ["runuser", "-u", self._user, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.root / "server.log"
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr or done.stdout}"
                               + (log.read_text()[-2000:] if log.exists() else ""))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://wharf@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"t{next(self._counter)}_{os.getpid()}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run([self._pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def available() -> bool:
    """Whether PostgreSQL's server binaries are installed here."""
    return bool(server_bin("initdb") and server_bin("pg_ctl"))


__all__ = ["Cluster", "available", "free_port", "server_bin"]
