"""Multi-holder PSI through real processes: five holders, all of five and t of five, against the plaintext truth."""

from __future__ import annotations

import csv
import json
import os
import random
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import grpc
import pytest

from datawharf.errors import InvalidArgument, JobFailed
from datawharf.model import PsiJob, PsiMode
from datawharf.serde import psi_to_proto
from datawharf.v1 import buyer_pb2, buyer_pb2_grpc
from tests.exchange import Exchange, StartExchange
from tests.leaks import find_values, read_wire_log, wire_traffic

HOLDERS = ("ash", "birch", "cedar", "dogwood", "elm")


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    ex = start_exchange("psi-multi", parties=HOLDERS, rows=20, wire_log=True)
    # Overlapping sets: each ID of a common pool is at a random subset of the holders (the
    # generated visits of each holder are its own), rewritten in place; holders re-read a changed file.
    rng = random.Random(5)
    pool = [f"PT-{i:05d}" for i in range(300)]
    at = {p: rng.sample(HOLDERS, rng.choice([0, 1, 2, 3, 4, 5, 5])) for p in pool}
    for h in HOLDERS:
        rows = [(p, rng.randint(0, 99), f"{rng.randint(-2000, 90000) / 100:.2f}") for p in pool if h in at[p]]
        rows += [(f"{h.upper()}-{i:04d}", rng.randint(0, 99), "12.50") for i in range(40)]  # at this holder alone
        rows.append(rows[0][:1] + (7, "1.05"))  # a second visit of one patient: summed, counted once
        path = ex.sources[h]
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["patient_id", "age", "cost", "department"])
            w.writerows([*r, "cardiology"] for r in rows)
        os.utime(path, ns=(1, 1 + HOLDERS.index(h)))  # a new mtime whatever the clock's resolution
    return ex


def buyer_ids(seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    picked = rng.sample([f"PT-{i:05d}" for i in range(300)], 220)
    ids = [f" {p.lower()}  " if i % 4 == 0 else p for i, p in enumerate(picked)] + [f"NOPE-{i}" for i in range(60)]
    rng.shuffle(ids)
    return ids


def truth(ex: Exchange, ids: list[str], t: int) -> set[str]:
    wanted = {i.strip().upper() for i in ids}
    at = {h: {r["patient_id"] for r in ex.rows_of([h])} for h in HOLDERS}
    return {i for i in wanted if sum(i in at[h] for h in HOLDERS) >= t}


def test_all_of_five_and_three_of_five_match_the_plaintext_truth(exchange: Exchange) -> None:
    ids = buyer_ids()
    with exchange.client() as c:
        every = c.psi("visits", "patient_id", ids, parties=HOLDERS, parallel=False)
        three = c.psi("visits", "patient_id", ids, parties=HOLDERS, at_least=3, parallel=False)
        count = c.psi("visits", "patient_id", ids, parties=HOLDERS, at_least=3, cardinality_only=True,
                      parallel=False)
    all5, three5 = truth(exchange, ids, 5), truth(exchange, ids, 3)
    assert 10 <= len(all5) < len(three5)
    assert every.size == len(all5) and {m.strip().upper() for m in every.matched} == all5
    assert every.holders == HOLDERS and every.at_least == 5
    assert three.size == len(three5) and {m.strip().upper() for m in three.matched} == three5
    assert count.size == len(three5) and count.matched == ()
    assert {t.party: t.state for t in count.view.tasks} == dict.fromkeys(HOLDERS, "CONTRIBUTED")


def test_join_and_sum_over_the_holders_that_have_each_id(exchange: Exchange) -> None:
    ids = buyer_ids(seed=2)
    with exchange.client() as c:
        ans = c.psi("visits", "patient_id", ids, parties=HOLDERS, at_least=2, mode="sum",
                    value_columns=["cost", "age"], parallel=False)
    met = truth(exchange, ids, 2)
    rows = [r for r in exchange.rows_of(HOLDERS) if r["patient_id"] in met]
    assert ans.size == len(met) and ans.matched == () and ans.noise is None
    assert ans.totals == {"cost": sum((Fraction(Decimal(r["cost"])) for r in rows), Fraction(0)),
                          "age": Fraction(sum(int(r["age"]) for r in rows))}


def test_bad_holders_and_thresholds_are_refused(exchange: Exchange) -> None:
    with exchange.client() as c:
        for kwargs, match in (({"at_least": 6}, "not between 1 and the 5"), ({"at_least": 0}, "at least 1"),
                              ({"parties": HOLDERS[:4] + ("ash",)}, "named twice")):
            with pytest.raises(InvalidArgument, match=match):
                c.psi("visits", "patient_id", ["a", "b"], **{"parties": HOLDERS, **kwargs})  # type: ignore[arg-type]
    # A buyer that skips the client, naming one holder twice to double its weight towards t, is
    # refused by the gateway before anything is sent to a holder.
    channel = exchange.channel()
    stub = buyer_pb2_grpc.BuyerServiceStub(channel)
    twice = PsiJob("visits", "patient_id", PsiMode.INTERSECTION, buyer_set_size=12,
                   holders=("ash", "ash", "birch"), at_least=2)
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitJob(exchange.signed(buyer_pb2.SubmitJobRequest(request_id="twice", psi=psi_to_proto(twice),
                                                                  parties=["ash", "birch"])), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "named twice" in err.value.details()
    channel.close()
    # One refusal fails the whole job, naming the holder.
    with exchange.client("mallory") as m:
        with pytest.raises(JobFailed) as failed:
            m.psi("visits", "patient_id", ["a", "b"], parties=HOLDERS, parallel=False)
    reason = failed.value.view.reason
    assert "not granted" in reason and any(reason.startswith(h) for h in HOLDERS), reason


def test_the_command_line_names_several_holders_and_a_threshold(exchange: Exchange, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from wharf.cli import app

    ids = buyer_ids(seed=3)
    (tmp_path / "mine.csv").write_text("id\n" + "\n".join(i.strip() for i in ids) + "\n")
    base = ["job", "psi", "-g", exchange.address, "--identity", str(exchange.identity("acme-insurance")),
            "--ids", str(tmp_path / "mine.csv"), "--id-column", "id", "--dataset", "visits", "--column", "patient_id",
            *(x for h in HOLDERS for x in ("--party", h))]
    out = CliRunner().invoke(app, [*base, "--at-least", "4", "--cardinality-only", "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.stdout)
    assert got["intersection_size"] == len(truth(exchange, ids, 4))
    assert got["holders"] == list(HOLDERS) and got["at_least"] == 4
    bad = CliRunner().invoke(app, [*base, "--at-least", "9"])
    assert bad.exit_code == 1 and "--at-least = 9 is not between 1 and the 5 holders" in bad.output


def test_nothing_raw_crosses_the_wire(exchange: Exchange) -> None:
    assert exchange.wire_log is not None
    records = read_wire_log(exchange.wire_log)
    traffic, _ = wire_traffic(records)
    assert traffic.unknown == []
    rows = exchange.rows_of(HOLDERS)
    ids = buyer_ids() + buyer_ids(seed=2) + buyer_ids(seed=3)
    raw = {r["patient_id"] for r in rows} | {i.strip() for i in ids} | {i.strip().lower() for i in ids}
    assert find_values(traffic, ["patient_id"]).found  # the search works: the key column's name travels
    report = find_values(traffic, raw | {r["cost"] for r in rows}, budget=1e-6)
    assert not report.found, f"raw values on the wire: {report.found[:5]}"
    # The buyer read only its own stages, each naming its holder.
    read = [r.msg.stage for r in records  # type: ignore[attr-defined]
            if r.method.endswith("/DownloadSet") and r.direction == "in"]
    assert {x.split("@")[0] for x in read} == {"W", "S", "P", "R"}
    assert {x.split("@")[1] for x in read} == set(HOLDERS)
