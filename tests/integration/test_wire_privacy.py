"""Everything that crossed the gateway's wire, checked for leaks.

The gateway runs with --wire-log, which records every message it received
and sent. After real jobs have run, no raw row value of any holder, no
per-holder figure, and no part of the buyer's secret key may appear in any
of it; the buyer receives only re-randomised totals; no holder receives
another holder's ciphertexts.

Values are looked for as a leak would carry them (tests/leaks.py): every
message is decoded with its recorded type, integer fields are compared
exactly, text is split into numbers and words, and ciphertext bytes are
searched only for encodings long enough that random bytes would not
contain them (the summed chance of a false alarm is asserted below 1e-6).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import pytest

from buyers.client import JobFailed
from datawharf.pki import Credentials
from datawharf.v1 import buyer_pb2, common_pb2
from tests.exchange import Exchange, StartExchange
from tests.leaks import Payload, Traffic, WireRecord, find_any, find_figures, find_values, read_wire_log, wire_traffic
from wharf.demo import HOSPITALS, truth

if TYPE_CHECKING:
    from protocols.aggregate import Buyer

# Listings publish a holder's row count rounded to two significant figures
# (820 here); an odd count keeps the exact one, which must not travel,
# distinguishable from the published approximation.
ROWS = 823
FALSE_ALARM = 1e-6  # bound on the chance that the raw-byte searches of one test match random bytes

JOBS = [
    ("visits", "sum", "cost", "", "auto"),
    ("visits", "mean", "cost", "age >= 65", "auto"),
    ("visits", "variance", "cost", "department == 'oncology'", "auto"),
    ("visits", "count", "patient_id", "", "auto"),
    ("visits", "sum", "cost", "", "paillier"),
    ("ward_load", "sum", "hourly_patients", "", "bfv"),
    ("ward_load", "mean", "hourly_kwh", "", "ckks"),
    ("ward_load", "sum", "hourly_kwh", "", "paillier-packed"),
]
BUYER_LITERALS = {"65", "oncology"}  # the buyer's own filter text travels in its jobs


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    return start_exchange("wire", rows=ROWS, wire_log=True, statistics={"northgate": ["sum", "count", "mean"]})


@dataclass
class Recorded:
    records: list[WireRecord]
    traffic: Traffic
    payloads: list[Payload]
    buyers: list[Buyer]

    @property
    def blob(self) -> bytes:
        return b"\x00".join(r.raw for r in self.records)


@pytest.fixture(scope="module")
def recorded(exchange: Exchange) -> Recorded:
    buyers = []
    with exchange.client() as c:
        for dataset, stat, column, where, backend in JOBS:
            job = c.submit(dataset, column, stat, where=where, backend=backend)
            c.result(job)
            buyers.append(job.buyer)
    with exchange.client("mallory") as m:  # a refused buyer's job crosses the wire too
        with pytest.raises(JobFailed):
            m.result(m.submit("visits", "cost", "sum"))
    assert exchange.wire_log is not None
    records = read_wire_log(exchange.wire_log)
    traffic, payloads = wire_traffic(records)
    return Recorded(records, traffic, payloads, buyers)


def test_every_service_was_recorded(recorded: Recorded) -> None:
    methods = {(r.method.rsplit("/", 1)[-1], r.direction) for r in recorded.records}
    assert {("Connect", "in"), ("Connect", "out"), ("SubmitJob", "in"), ("FetchResult", "out"),
            ("WatchJob", "out"), ("ListCatalog", "out")} <= methods


def test_every_byte_is_decoded_or_searched(recorded: Recorded) -> None:
    # The checks below cover framing, numbers, text and opaque bytes; a field
    # the schema does not know would fall between them.
    assert recorded.traffic.unknown == []
    kinds = defaultdict(int)
    for p in recorded.payloads:
        kinds[type(p.message).__name__] += 1
    contributions = sum(1 for r in recorded.records if r.method.endswith("/Connect") and r.direction == "in"
                        and r.msg.WhichOneof("body") == "contribution" and r.msg.contribution.chunk.last)
    assert kinds == {"EncryptedFigures": contributions, "JobResult": len(JOBS)}


def test_no_raw_value_crosses_the_wire(recorded: Recorded, exchange: Exchange) -> None:
    rows = exchange.rows_of(HOSPITALS)
    assert len(rows) == 3 * ROWS
    # The search itself works: the buyer's filter text is found where it travels.
    assert len(find_values(recorded.traffic, BUYER_LITERALS).found) >= 2
    readings = {x for r in exchange.rows_of(HOSPITALS, "ward_load") for x in r["hourly_kwh"].split(";")}
    # Ages and hourly patient counts are small integers, indistinguishable from
    # the counts every job states in the open (holders asked, required); they
    # are covered only by the per-holder figures below.
    cells = {r["patient_id"] for r in rows} | {r["cost"] for r in rows} | readings
    report = find_values(recorded.traffic, cells - BUYER_LITERALS, budget=FALSE_ALARM)
    assert not report.found, f"raw values on the wire: {report.found[:5]}"
    assert report.bound <= FALSE_ALARM


def holder_figures(exchange: Exchange, party: str) -> dict[str, tuple[int, int]]:
    """What a holder computes for the visits jobs, per filter: rows, the sum of
    cost in cents and of its square in cents² (name → (figure, decimal places))."""
    rows = exchange.rows_of([party])
    out = {}
    for where in sorted({w for dataset, _, _, w, _ in JOBS if dataset == "visits"}):
        n = truth(rows, "cost", "count", where)
        total = truth(rows, "cost", "sum", where)
        squares = truth(rows, "cost", "variance", where) * (n - 1) + total * total / n
        label = party + (f" where {where}" if where else "")
        for name, value, places in (("rows", n, 0), ("sum of cost", total, 2), ("sum of squared cost", squares, 4)):
            scaled = Fraction(value) * 10**places
            assert scaled.denominator == 1
            out[f"{label}: {name}"] = (int(scaled), places)
    return out


def test_no_per_holder_figure_crosses_the_wire(recorded: Recorded, exchange: Exchange) -> None:
    figures = {k: v for party in HOSPITALS for k, v in holder_figures(exchange, party).items()}
    report = find_figures(recorded.traffic, figures, budget=FALSE_ALARM)
    assert not report.found, f"per-holder figures on the wire: {report.found}"
    assert report.bound <= FALSE_ALARM
    # What a listing may say instead: the count rounded to two significant figures.
    assert {820, 3 * 820} <= set(recorded.traffic.integers)


def test_secret_key_never_leaves_the_buyer(recorded: Recorded) -> None:
    import tenseal as ts

    blob = recorded.blob
    bodies = [common_pb2.JobBody.FromString(r.msg.signed.body) for r in recorded.records
              if r.type == "datawharf.v1.SubmitJobRequest"]
    contexts = [b.aggregate.encryption.public_context for b in bodies if b.aggregate.encryption.public_context]
    assert len(contexts) == 2
    for raw in contexts:
        ctx = ts.context_from(raw)
        assert ctx.is_public() and not ctx.has_secret_key()
    for buyer in recorded.buyers:
        if not buyer.backend.value.startswith("paillier"):
            continue
        private = buyer._scheme._private
        for secret in (private.p, private.q, private.hp, private.hq):
            assert secret.to_bytes((secret.bit_length() + 7) // 8, "big") not in blob
        n = buyer.request.params.paillier_n
        assert n.to_bytes((n.bit_length() + 7) // 8, "big") in blob  # the public key does travel


def test_certificate_keys_never_leave_their_holders(exchange: Exchange, recorded: Recorded) -> None:
    """Every identity's ECDSA private scalar stays off the wire and out of every log; the
    certificates (public) do travel, in signed jobs and receipts."""
    blob = recorded.blob
    logs = b"".join(p.read_bytes() for p in exchange.logs.glob("*.log"))
    keys = sorted((exchange.root / "ids").glob("*/key.pem"))
    assert len(keys) >= 5  # the gateway, three holders, the buyer
    for path in keys:
        creds = Credentials.load(path.parent)
        scalar = creds.key.private_numbers().private_value.to_bytes(32, "big")
        assert scalar not in blob and scalar not in logs, path
        assert creds.key_pem not in logs
    assert b"PRIVATE KEY" not in blob and b"PRIVATE KEY" not in logs
    buyer = Credentials.load(exchange.identity("acme-insurance"))
    assert buyer.cert_pem in blob


def _contributions(recorded: Recorded) -> dict[str, list[bytes]]:
    """Ciphertexts each party sent, reassembled from its chunks."""
    by_party: dict[str, list[bytes]] = defaultdict(list)
    for p in recorded.payloads:
        if p.method.endswith("/Connect") and p.direction == "in":
            by_party[p.caller].extend(p.message.ciphertexts)
    return by_party


def test_buyer_receives_only_rerandomised_totals(recorded: Recorded) -> None:
    sent = {c for cts in _contributions(recorded).values() for c in cts}
    assert sent, "no contributions recorded"
    results = [p.message for p in recorded.payloads if p.method.endswith("/FetchResult")]
    assert len(results) == len(JOBS) and all(isinstance(r, buyer_pb2.JobResult) for r in results)
    for result in results:
        assert not set(result.figures.ciphertexts) & sent
    to_buyer = b"\x00".join(
        r.raw for r in recorded.records if r.direction == "out" and "BuyerService" in r.method
    )
    assert not find_any(to_buyer, sent)


def test_no_holder_receives_another_holders_ciphertexts(recorded: Recorded) -> None:
    by_party = _contributions(recorded)
    for party in HOSPITALS:
        received = b"\x00".join(
            r.raw for r in recorded.records
            if r.method.endswith("/Connect") and r.direction == "out" and r.caller == party
        )
        others = [c for p, cts in by_party.items() if p != party for c in cts]
        assert others and not find_any(received, others)
