"""Start a real exchange (gateway and party processes on loopback) for tests."""

from __future__ import annotations

import queue
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, Sequence

import grpc

from wharf.demo import HOSPITALS, generate_visits, generate_ward_load, party_config, read_rows
from wharf.local import LocalExchange
from datawharf.identity import caller_metadata
from datawharf.pki import Credentials, Role, digest
from datawharf.signing import new_body, sign_job, sign_receipt
from datawharf.tls import channel
from datawharf.filters import Op
from datawharf.model import ColumnKind, ColumnSpec, Listing, PrivacyTerms
from datawharf.serde import listing_to_proto
from datawharf.v1 import buyer_pb2, common_pb2, party_pb2, party_pb2_grpc
from buyers.client import Client

ALL_STATS = ["sum", "count", "mean", "variance", "histogram"]


class StartExchange(Protocol):
    """The ``start_exchange`` fixture (tests/conftest.py): an Exchange with these options, started."""

    def __call__(self, name: str = "exchange", **options: Any) -> "Exchange": ...


class Exchange(LocalExchange):
    """Three hospitals (by default) with generated visits and ward load, for tests."""

    def __init__(self, root: Path, *, parties: tuple[str, ...] = HOSPITALS, rows: int = 800,
                 wire_log: bool = False, statistics: dict[str, list[str]] | None = None,
                 http: bool = False, http_token: str | None = None, bench_results: Path | None = None,
                 insecure: bool = False, dp: str | None = None, buyers: tuple[str, ...] | None = None,
                 grants: bool = False, review: bool = False, store: str = "sqlite", replicas: int = 1,
                 lease_s: float = 10.0, gateway_args: Sequence[str] = ()) -> None:
        super().__init__(root, insecure=insecure, review=review, store=store, replicas=replicas, lease_s=lease_s)
        self.gateway_args = tuple(gateway_args)  # `wharf gateway serve` options for every replica, restarts too
        self.dp = dp  # the body of every holder's [datasets.policy.dp]; None: exact answers
        self.buyers = buyers  # the holders' allowed_buyers; None: acme-insurance only
        self.grants = grants  # visits needs a grant the holder signed
        self.http = http
        self.http_token = http_token
        self.bench_results = bench_results
        self.names = parties
        self.rows = rows
        self.wire_log = root / "wire.jsonl" if wire_log else None
        self.statistics = statistics or {}
        self.sources: dict[str, Path] = {}
        self.wards: dict[str, Path] = {}

    def start_gateway(self, *extra: str, listen: str = "127.0.0.1:0", timeout_s: float = 30) -> str:
        args = list(extra)
        if self.wire_log:
            args += ["--wire-log", str(self.wire_log)]
        if self.http:
            args += ["--http", "127.0.0.1:0", "--bench-results", str(self.bench_results or self.root / "no-results")]
            if self.http_token:
                args += ["--http-token", self.http_token]
        return super().start_gateway(*args, listen=listen, timeout_s=timeout_s)

    def start_replica(self, index: int, *extra: str, listen: str = "127.0.0.1:0", timeout_s: float = 30) -> str:
        return super().start_replica(index, *self.gateway_args, *extra, listen=listen, timeout_s=timeout_s)

    def config(self, name: str) -> str:
        """The TOML ``name`` was (or will be) started with."""
        return party_config(name, self.address, self.sources[name], ward_source=self.wards[name],
                            statistics=self.statistics.get(name, ALL_STATS), dp=self.dp, grants=self.grants,
                            **({"buyers": self.buyers} if self.buyers else {}))

    def start(self) -> "Exchange":
        self.start_gateway()
        for i, name in enumerate(self.names):
            src = self.root / f"{name}.csv"
            generate_visits(src, name[:2].upper(), self.rows, seed=31 + i)
            self.sources[name] = src
            self.wards[name] = self.root / f"{name}-wards.csv"
            generate_ward_load(self.wards[name], days=20, seed=31 + i)
            self.start_party(name, self.config(name))
        if not self.review:  # under review nothing is in the catalog before an operator approves it
            self.wait_online(self.names)
        return self

    def wait_online(self, names: Sequence[str], *, dataset: str = "visits", timeout_s: float = 60,  # type: ignore[override]
                    caller: str = "acme-insurance") -> None:
        super().wait_online(dataset, names, timeout_s=timeout_s, caller=caller)

    def client(self, caller: str = "acme-insurance") -> Client:
        return super().client(caller)

    def creds(self, name: str = "acme-insurance", role: Role = Role.BUYER, organisation: str = "") -> Credentials:
        return Credentials.load(self.identity(name, role, organisation=organisation))

    def channel(self, name: str | None = "acme-insurance", role: Role = Role.BUYER) -> grpc.Channel:
        """A raw channel under ``name``'s certificate; None: TLS without a client certificate."""
        if self.ca is None:
            return channel(self.address, None, insecure=True)
        if name is None:
            return grpc.secure_channel(self.address, grpc.ssl_channel_credentials(self.ca.ca_pem))
        return channel(self.address, self.creds(name, role))

    def signed(self, request: buyer_pb2.SubmitJobRequest, name: str = "acme-insurance") -> buyer_pb2.SubmitJobRequest:
        """``request`` with its spec, parties and min_parties moved into a body signed by ``name``."""
        if self.ca is None:
            return request
        which = request.WhichOneof("spec")
        body = new_body(self.creds(name), request.request_id, parties=request.parties,
                        min_parties=request.min_parties, **{which: getattr(request, which)} if which else {})
        return buyer_pb2.SubmitJobRequest(request_id=request.request_id, timeout_seconds=request.timeout_seconds,
                                          signed=sign_job(self.creds(name), body))

    def fake_party(self, name: str, *listings: Listing, organisation: str = "") -> "FakeParty":
        """A hand-driven holder with a certificate of this exchange."""
        creds = None if self.ca is None else Credentials.load(self.identity(name, Role.PARTY,
                                                                             organisation=organisation))
        return FakeParty(self.address, name, *listings, creds=creds)

    def rows_of(self, parties: Sequence[str], dataset: str = "visits") -> list[dict[str, str]]:
        files = self.sources if dataset == "visits" else self.wards
        return [r for p in parties for r in read_rows(files[p])]


VISITS = Listing(
    "visits",
    (
        ColumnSpec("patient_id", ColumnKind.STRING, join_key=True),
        ColumnSpec("age", ColumnKind.INT, psi_value=True, filter_ops=(Op.LT, Op.LE, Op.GT, Op.GE), aggregate=True,
                   bounds=(Decimal(0), Decimal(120))),
        ColumnSpec("cost", ColumnKind.DECIMAL, 2, psi_value=True, aggregate=True,
                   bounds=(Decimal(-500), Decimal(5000)), filter_ops=(Op.LT, Op.LE, Op.GT, Op.GE)),
        ColumnSpec("department", ColumnKind.STRING,
                   categories=("cardiology", "oncology", "pediatrics", "emergency", "orthopedics"),
                   filter_ops=(Op.EQ, Op.NE), group=True),
    ),
    800,
    privacy=PrivacyTerms(dp=False),
)

WARD_LOAD = Listing(
    "ward_load",
    (
        ColumnSpec("ward", ColumnKind.STRING, categories=("north", "south", "east", "west"),
                   filter_ops=(Op.EQ, Op.NE), group=True),
        ColumnSpec("day", ColumnKind.INT, filter_ops=tuple(Op)),
        ColumnSpec("hourly_patients", ColumnKind.VECTOR, 0, 24, aggregate=True, bounds=(Decimal(0), Decimal(100))),
        ColumnSpec("hourly_kwh", ColumnKind.VECTOR, 2, 24, aggregate=True, bounds=(Decimal(0), Decimal(200))),
    ),
    80,
    privacy=PrivacyTerms(dp=False),
)


class FakeParty:
    """A holder under the test's control, speaking the party protocol by hand."""

    def __init__(self, address: str, name: str, *listings: Listing, creds: Credentials | None = None) -> None:
        listings = listings or (VISITS, WARD_LOAD)
        self.name = name
        self.creds = creds
        self.bodies: dict[str, bytes] = {}  # task id -> digest of the buyer's signed job body
        self._channel = channel(address, creds, insecure=creds is None)
        self._out: queue.Queue[party_pb2.PartyMessage | None] = queue.Queue()
        self.inbox: queue.Queue[party_pb2.GatewayMessage] = queue.Queue()
        self._out.put(party_pb2.PartyMessage(register=party_pb2.Register(
            datasets=[listing_to_proto(x) for x in listings])))
        stub = party_pb2_grpc.PartyServiceStub(self._channel)
        self._call = stub.Connect(iter(self._out.get, None), metadata=caller_metadata(name) if creds is None else ())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.name = self.next("registered").registered.party  # with TLS, the certificate's name

    def _read(self) -> None:
        try:
            for m in self._call:
                if m.WhichOneof("body") == "task" and m.task.HasField("signed"):
                    self.bodies[m.task.task_id] = digest(m.task.signed.body)
                self.inbox.put(m)
        except grpc.RpcError:
            pass

    def next(self, kind: str, timeout_s: float = 20) -> party_pb2.GatewayMessage:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                m = self.inbox.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if m.WhichOneof("body") == kind:
                return m
        raise TimeoutError(f"{self.name}: no {kind} message within {timeout_s} s")

    @staticmethod
    def body(task: party_pb2.Task) -> Any:
        """Where the task's spec is: the buyer's signed body (with TLS), else the task itself."""
        return common_pb2.JobBody.FromString(task.signed.body) if task.HasField("signed") else task

    def send(self, message: party_pb2.PartyMessage) -> None:
        self._out.put(message)

    def send_chunk(self, task_id: str, data: bytes, seq: int = 0, last: bool = True, *, sign: bool = True) -> None:
        """A contribution chunk; the last one carries this holder's signed receipt over ``data``
        (as a whole contribution) unless ``sign`` is False."""
        receipt = b""
        if sign and last and self.creds is not None and task_id in self.bodies:
            receipt = sign_receipt(self.creds, self.bodies[task_id], digest(data)).SerializeToString()
        self.send(party_pb2.PartyMessage(contribution=party_pb2.ContributionChunk(
            task_id=task_id, chunk=common_pb2.Chunk(seq=seq, data=data, last=last), receipt=receipt)))

    def close(self) -> None:
        self._out.put(None)
        self._call.cancel()
        self._channel.close()
