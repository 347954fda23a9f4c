"""A whole exchange on this machine: one gateway and party nodes as processes.

The demo, the test suite and the benchmarks all start their exchanges here,
so "how a local exchange is started" is written once. Every process is the
real ``wharf`` command on a free loopback port; logs go to ``root/logs``.
The exchange has its own CA in ``root/ca``: the gateway, every holder and
every buyer get certificates from it (``identity``), and all traffic is
mutual TLS unless the exchange is made ``insecure`` (to measure what TLS
and signing cost).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Callable, Sequence

from buyers.client import Client
from datawharf.pki import Authority, Role
from gateway.store.base import display_url

__all__ = ["SQLITE", "LocalExchange", "Processes", "check_gateways", "wait_for"]

SQLITE = "sqlite"  # the gateway's own store file under its --data-dir


def check_gateways(store: str = SQLITE, replicas: int = 1) -> None:
    """Raise ValueError unless this launcher can start ``replicas`` gateways on ``store``: one gateway
    on its own SQLite file, or any number of replicas sharing a ``postgresql://`` database."""
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    if store == SQLITE and replicas != 1:
        raise ValueError("replicas share a PostgreSQL store; a SQLite store serves one gateway (pass a "
                         "postgresql:// URL as the store)")
    if store != SQLITE and not store.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"the store must be sqlite or a postgresql:// URL, not {display_url(store)}")


class Processes:
    """Child processes running ``python -m wharf ...``, stopped together."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str, module: str = "wharf") -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")
        # Only the arguments configure a local exchange: an operator's WHARF_* settings
        # (a fixed --http port, a wire log) must not leak into every process started here.
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
        proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()  # the child holds its own descriptor
        self.procs.append((name, proc))
        return proc

    def stop(self, names: Sequence[str] | None = None, *, grace_s: float = 15.0) -> None:
        """SIGTERM (newest first), then wait; a process still running after ``grace_s`` is killed."""
        chosen = [(n, p) for n, p in self.procs if names is None or n in names]
        for _, p in reversed(chosen):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for name, p in chosen:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop in time; killing it", file=sys.stderr)
                p.kill()
                p.wait()
        self.procs = [(n, p) for n, p in self.procs if (n, p) not in chosen]

    def kill(self, name: str) -> None:
        """SIGKILL one process: a holder or gateway that vanishes without a word."""
        for n, p in self.procs:
            if n == name and p.poll() is None:
                p.kill()
                p.wait()
        self.procs = [(n, p) for n, p in self.procs if n != name]


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, alive: Callable[[], None]) -> None:
    """Poll ``check`` until it holds; ``alive`` raises if a process it needs has died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive()
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class LocalExchange:
    """A gateway and party nodes on loopback, each a real ``wharf`` process.

    ``start_gateway`` waits until the gateway has written its address;
    ``start_party`` writes the party's TOML (its ``gateway`` key filled in
    with the running gateway's address) and starts ``wharf party serve``;
    ``wait_online`` waits until the named holders list a dataset.
    """

    def __init__(self, root: Path, *, log_level: str = "info", insecure: bool = False, review: bool = False,
                 store: str = SQLITE, replicas: int = 1, lease_s: float = 10.0) -> None:
        check_gateways(store, replicas)
        self.root = root
        self.store, self.replicas, self.lease_s = store, replicas, lease_s
        self.replica_addresses: dict[int, str] = {}
        self.insecure = insecure
        # Listing review off by default: every dataset a holder registers is in the catalog, as a
        # development exchange expects; review=True runs the market's review (`wharf listing`).
        self.review = review
        self.ca: Authority | None = None
        if not insecure:
            ca_dir = root / "ca"
            self.ca = Authority(ca_dir) if (ca_dir / "key.pem").exists() else Authority.init(ca_dir)
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs = Processes(self.logs)
        self.log_level = log_level
        self.address = ""
        self.http_address = ""
        self.parties: list[str] = []

    @property
    def gateway_dir(self) -> Path:
        return self.root / "gateway"

    def replica_dir(self, index: int) -> Path:
        """Replica ``index``'s data directory (replica 0's is ``gateway_dir``)."""
        return self.gateway_dir if index == 0 else self.root / f"gateway-{index}"

    @staticmethod
    def replica_name(index: int) -> str:
        return "gateway" if index == 0 else f"gateway-{index}"

    def identity(self, name: str, role: Role | str = Role.BUYER, *, organisation: str = "") -> Path:
        """The certificate directory of ``name`` in ``role``, issued on first use."""
        assert self.ca is not None, "an insecure exchange has no certificates"
        directory = self.root / "ids" / f"{Role(role).value}-{name}"
        if not (directory / "cert.pem").exists():
            self.ca.issue(name, role, organisation=organisation).save(directory)
        return directory

    def revoke(self, name: str) -> None:
        assert self.ca is not None
        self.ca.revoke(name, reason="revoked by the local exchange")

    def alive(self) -> None:
        """Raise if a process this exchange started has exited (with the end of its log)."""
        for name, p in self.procs.procs:
            if p.poll() is not None:
                log = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {p.returncode}; {self.logs / (name + '.log')} ends:\n{log}")

    def start_gateway(self, *extra: str, listen: str = "127.0.0.1:0", timeout_s: float = 30) -> str:
        """Start the gateway (or, with a PostgreSQL store, each replica and a TCP balancer in front of
        them); the address buyers and holders use."""
        addresses = [self.start_replica(i, *extra, listen=listen if self.replicas == 1 else "127.0.0.1:0",
                                        timeout_s=timeout_s) for i in range(self.replicas)]
        if self.replicas == 1:
            self.address = addresses[0]
            return self.address
        ready = self.root / "balancer.json"
        ready.unlink(missing_ok=True)
        self.procs.start("balancer", "--listen", listen, "--ready", str(ready), *addresses, module="wharf.balancer")
        wait_for("the balancer", ready.exists, timeout_s, self.alive)
        self.address = json.loads(ready.read_text())["address"]
        return self.address

    def start_replica(self, index: int, *extra: str, listen: str = "127.0.0.1:0", timeout_s: float = 30) -> str:
        """Start (or restart) gateway replica ``index``; its own address."""
        data_dir = self.replica_dir(index)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the gateway's files are its operator's alone
        ready = data_dir / "gateway.json"
        ready.unlink(missing_ok=True)
        if self.ca is None:
            trust = ["--insecure"]
        else:
            trust = ["--identity", str(self.identity("gateway", Role.GATEWAY)), "--crl", str(self.ca.crl_path)]
        shared: list[str] = []
        if self.store != SQLITE:
            # Replicas share the database, the blob directory and the ledger's key (one chain).
            shared = ["--store", self.store, "--blob-dir", str(self.root / "blobs"), "--replica",
                      self.replica_name(index), "--lease", str(self.lease_s)]
            key = self.gateway_dir / "ledger.key"
            if index > 0 and key.exists() and not (data_dir / "ledger.key").exists():
                shutil.copy2(key, data_dir / "ledger.key")
        self.procs.start(self.replica_name(index), "gateway", "serve", "--listen", listen, "--data-dir",
                         str(data_dir), "--log-level", self.log_level, *trust, *shared,
                         "--listing-review", "required" if self.review else "off", *extra)
        wait_for(f"gateway replica {index}", ready.exists, timeout_s, self.alive)
        info = json.loads(ready.read_text())
        if index == 0:
            self.http_address = info.get("http", "")
            if self.replicas == 1:
                self.address = info["address"]
        self.replica_addresses[index] = info["address"]
        return str(info["address"])

    def kill_replica(self, index: int) -> None:
        """SIGKILL replica ``index``: a gateway that vanishes mid-job."""
        self.procs.kill(self.replica_name(index))

    def stop_gateway(self) -> None:
        self.procs.stop(["balancer", *(self.replica_name(i) for i in range(self.replicas))], grace_s=20)

    def start_party(self, name: str, config: str, *, organisation: str = "") -> Path:
        """Write ``config`` (TOML text, its identity added) as ``root/NAME.toml`` and start the node;
        returns the path."""
        path = self.root / f"{name}.toml"
        if self.ca is None:
            trust = "insecure = true\n"
        else:
            ident = self.identity(name, Role.PARTY, organisation=organisation)
            trust = f'identity = "{ident}"\ncrl = "{self.ca.crl_path}"\n'
        path.write_text(trust + config)
        self.procs.start(name, "party", "serve", "--config", str(path), "--log-level", self.log_level)
        if name not in self.parties:
            self.parties.append(name)
        return path

    def stop_party(self, name: str) -> None:
        self.procs.stop([name])

    def kill_party(self, name: str) -> None:
        self.procs.kill(name)

    def client(self, caller: str) -> Client:
        if self.ca is None:
            return Client(self.address, caller=caller, insecure=True)
        return Client(self.address, self.identity(caller))

    def wait_online(self, dataset: str, names: Sequence[str], *, timeout_s: float = 60,
                    caller: str = "observer") -> None:
        with self.client(caller) as c:
            def online() -> bool:
                items = {i.dataset: i for i in c.catalog()}
                return dataset in items and set(names) <= set(items[dataset].holders_online)

            wait_for(f"{', '.join(names)} to list {dataset!r}", online, timeout_s, self.alive)

    def stop(self) -> None:
        self.procs.stop()

    def __enter__(self) -> "LocalExchange":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
