"""Everything that crossed the gateway's wire, checked for leaks.

The gateway runs with --wire-log, which records every message it received
and sent. After real jobs have run, no raw row value of any holder, no
per-holder figure, and no part of the buyer's secret key may appear in any
of it; the buyer receives only re-randomised totals; no holder receives
another holder's ciphertexts.
"""

from __future__ import annotations

import base64
import json
import struct
from collections import defaultdict
from decimal import Decimal

import numpy as np
import pytest

from datawharf.chunking import Assembler, Piece
from wharf.demo import HOSPITALS
from datawharf.v1 import buyer_pb2, common_pb2, party_pb2
from buyers.client import JobFailed
from protocols.fixed_point import scale_column
from tests.exchange import Exchange
from tests.leaks import find_any

TYPES = {
    cls.DESCRIPTOR.full_name: cls
    for mod in (buyer_pb2, common_pb2, party_pb2)
    for cls in vars(mod).values()
    if hasattr(cls, "DESCRIPTOR") and hasattr(cls, "FromString")
}
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


@pytest.fixture(scope="module")
def recorded(exchange: Exchange):  # type: ignore[no-untyped-def]
    buyers = []
    with exchange.client() as c:
        for dataset, stat, column, where, backend in JOBS:
            job = c.submit(dataset, column, stat, where=where, backend=backend)
            c.result(job)
            buyers.append(job.buyer)
    with exchange.client("mallory") as m:  # a refused buyer's job crosses the wire too
        with pytest.raises(JobFailed):
            m.result(m.submit("visits", "cost", "sum"))
    records = [json.loads(line) for line in exchange.wire_log.read_text().splitlines()]  # type: ignore[union-attr]
    for r in records:
        r["raw"] = base64.b64decode(r["bytes"])
        r["msg"] = TYPES[r["type"]].FromString(r["raw"])
    return records, buyers


def test_every_service_was_recorded(recorded) -> None:  # type: ignore[no-untyped-def]
    records, _ = recorded
    methods = {(r["method"].rsplit("/", 1)[-1], r["direction"]) for r in records}
    assert {("Connect", "in"), ("Connect", "out"), ("SubmitJob", "in"), ("FetchResult", "out"),
            ("WatchJob", "out"), ("ListCatalog", "out")} <= methods


def test_no_raw_value_crosses_the_wire(recorded, exchange: Exchange) -> None:  # type: ignore[no-untyped-def]
    records, _ = recorded
    blob = b"\x00".join(r["raw"] for r in records)
    rows = exchange.rows_of(HOSPITALS)
    filter_literals = {"65", "oncology"}
    assert len(rows) == 3 * exchange.rows and b"oncology" in blob  # the search itself works
    leaks = find_any(blob, [r["patient_id"].encode() for r in rows])
    assert not leaks, f"patient ids on the wire: {sorted(leaks)[:5]}"
    costs = {r["cost"] for r in rows if len(r["cost"]) >= 5} - filter_literals
    assert not find_any(blob, [c.encode() for c in costs])
    assert not find_any(blob, [struct.pack("<d", float(c)) for c in costs if not c.endswith(".00")])
    readings = {x for r in exchange.rows_of(HOSPITALS, "ward_load") for x in r["hourly_kwh"].split(";")}
    readings = {x for x in readings if len(x) >= 5 and not x.endswith("0")}
    assert readings and not find_any(blob, [x.encode() for x in readings])
    assert not find_any(blob, [struct.pack("<d", float(x)) for x in readings])


def test_no_per_holder_figure_crosses_the_wire(recorded, exchange: Exchange) -> None:  # type: ignore[no-untyped-def]
    records, _ = recorded
    blob = b"\x00".join(r["raw"] for r in records)
    for party in HOSPITALS:
        rows = exchange.rows_of([party])
        cents = scale_column(np.array([Decimal(r["cost"]) for r in rows], dtype=float), 2)
        for figure in (int(cents.sum()), int(sum(int(v) ** 2 for v in cents.tolist())), len(rows)):
            assert str(figure).encode() not in blob
            raw = figure.to_bytes((figure.bit_length() + 7) // 8 or 1, "big")
            if len(raw) >= 3:
                assert raw not in blob


def test_secret_key_never_leaves_the_buyer(recorded) -> None:  # type: ignore[no-untyped-def]
    import tenseal as ts

    records, buyers = recorded
    blob = b"\x00".join(r["raw"] for r in records)
    contexts = [r["msg"].aggregate.encryption.public_context for r in records
                if r["type"] == "datawharf.v1.SubmitJobRequest" and r["msg"].aggregate.encryption.public_context]
    assert len(contexts) == 2
    for raw in contexts:
        ctx = ts.context_from(raw)
        assert ctx.is_public() and not ctx.has_secret_key()
    for buyer in buyers:
        if not buyer.backend.value.startswith("paillier"):
            continue
        private = buyer._scheme._private
        for secret in (private.p, private.q, private.hp, private.hq):
            assert secret.to_bytes((secret.bit_length() + 7) // 8, "big") not in blob
        n = buyer.request.params.paillier_n
        assert n.to_bytes((n.bit_length() + 7) // 8, "big") in blob  # the public key does travel


def _contributions(records) -> dict[str, list[bytes]]:  # type: ignore[no-untyped-def]
    """Ciphertexts each party sent, reassembled from its chunks."""
    by_party: dict[str, list[bytes]] = defaultdict(list)
    pending: dict[str, Assembler] = {}
    for r in records:
        if r["method"].endswith("/Connect") and r["direction"] == "in" and r["msg"].WhichOneof("body") == "contribution":
            ch = r["msg"].contribution
            a = pending.setdefault(ch.task_id, Assembler(1 << 24))
            payload = a.add(Piece(ch.chunk.seq, ch.chunk.data, ch.chunk.last))
            if payload is not None:
                by_party[r["caller"]].extend(common_pb2.EncryptedFigures.FromString(payload).ciphertexts)
    return by_party


def test_buyer_receives_only_rerandomised_totals(recorded) -> None:  # type: ignore[no-untyped-def]
    records, buyers = recorded
    sent = {c for cts in _contributions(records).values() for c in cts}
    assert sent, "no contributions recorded"
    results = []
    a = Assembler(1 << 24)
    for r in records:
        if r["method"].endswith("/FetchResult") and r["direction"] == "out":
            payload = a.add(Piece(r["msg"].seq, r["msg"].data, r["msg"].last))
            if payload is not None:
                results.append(buyer_pb2.JobResult.FromString(payload))
                a = Assembler(1 << 24)
    assert len(results) == len(JOBS)
    for result in results:
        assert not set(result.figures.ciphertexts) & sent
    to_buyer = b"\x00".join(
        r["raw"] for r in records if r["direction"] == "out" and "BuyerService" in r["method"]
    )
    assert not find_any(to_buyer, sent)


def test_no_holder_receives_another_holders_ciphertexts(recorded) -> None:  # type: ignore[no-untyped-def]
    records, _ = recorded
    by_party = _contributions(records)
    for party in HOSPITALS:
        received = b"\x00".join(
            r["raw"] for r in records
            if r["method"].endswith("/Connect") and r["direction"] == "out" and r["caller"] == party
        )
        others = [c for p, cts in by_party.items() if p != party for c in cts]
        assert others and not find_any(received, others)
