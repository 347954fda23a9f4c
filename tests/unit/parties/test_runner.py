"""The holder's side of a task: policy, data, filter, encryption."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from protocols.schemes.paillier import generate_keypair

from parties.config import load_party_config
from datawharf.model import GroupBy
from datawharf.serde import contribution_from_proto
from datawharf.v1 import common_pb2
from parties.runner import Runner
from parties.sources import SourceError, load
from protocols.aggregate import AggregateResult
from protocols.schemes import Backend
from tests.jobs import make_job

CSV = """patient_id,age,cost,department
A1,70,100.25,cardiology
A2,30,-20.50,oncology
A3,80,10.00,cardiology
A4, 66 ,5.05, cardiology
"""
DEPTS = '["cardiology", "oncology", "pediatrics"]'

CONFIG = """
name = "h"
gateway = "127.0.0.1:1"
[[datasets]]
name = "visits"
source = "v.csv"
columns = [
  {{ name = "patient_id", type = "string" }},
  {{ name = "age", type = "int" }},
  {{ name = "cost", type = "decimal", decimals = 2 }},
  {{ name = "department", type = "string", categories = ["cardiology", "oncology", "pediatrics"] }},
]
[datasets.policy]
allowed_buyers = ["acme"]
allowed_statistics = ["sum", "mean", "count", "histogram"]
min_rows = {min_rows}
min_parties = {min_parties}
small_groups = "{small}"
"""


@pytest.fixture(scope="module")
def keypair():  # type: ignore[no-untyped-def]
    return generate_keypair(2048)  # Blum primes, so the buyer can prove its modulus


def runner(tmp_path: Path, csv: str = CSV, min_rows: int = 2, min_parties: int = 1, small: str = "suppress") -> Runner:
    (tmp_path / "v.csv").write_text(csv)
    (tmp_path / "p.toml").write_text(CONFIG.format(min_rows=min_rows, min_parties=min_parties, small=small))
    return Runner(load_party_config(tmp_path / "p.toml"))


class Result:
    def __init__(self, outcome) -> None:  # type: ignore[no-untyped-def]
        self.outcome = outcome
        self.value = outcome.groups[0].values[0]
        self.rows = outcome.groups[0].rows


def ask(r: Runner, keypair, stat: str, column: str = "cost", where: str = "", buyer: str = "acme",  # type: ignore[no-untyped-def]
        min_parties: int = 1, **kw):
    b, job = make_job(stat, column, where=where, keypair=keypair, **kw)
    answer = r.run(buyer, job, min_parties)
    if answer.payload is None:
        return answer
    c = contribution_from_proto(common_pb2.EncryptedFigures.FromString(answer.payload))
    return Result(b.finish(AggregateResult(c.ciphertexts, 1, {"h": c.suppressed} if c.suppressed else {})))


def test_filtered_mean(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    out = ask(runner(tmp_path), keypair, "mean", where="age >= 66 and department == 'cardiology'")
    assert out.value == (Fraction("100.25") + Fraction(10) + Fraction("5.05")) / 3 and out.rows == 3


def test_whitespace_in_text_and_ints_is_trimmed(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    assert ask(runner(tmp_path, min_rows=1), keypair, "sum", where="age == 66").value == Fraction("5.05")


def test_refusals_say_why(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    r = runner(tmp_path, min_rows=2)
    assert "not granted" in ask(r, keypair, "sum", buyer="mallory").refusal
    assert "'variance' is not allowed" in ask(r, keypair, "variance").refusal
    assert "fewer than 2 rows" in ask(r, keypair, "sum", where="age < 40").refusal
    r2 = runner(tmp_path, min_parties=3)
    assert "at least 3 holders" in ask(r2, keypair, "sum", min_parties=2).refusal


def test_unknown_column_is_a_failure_not_a_crash(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    r = runner(tmp_path)
    assert "column 'weight'" in ask(r, keypair, "sum", column="weight").failure
    assert "filter column 'zip'" in ask(r, keypair, "sum", where="zip == 1").failure
    assert "holds text; compare it with a quoted string" in ask(r, keypair, "sum", where="department == 3").failure
    assert "is numeric; compare it with a number" in ask(r, keypair, "sum", where="age == 'old'").failure
    assert "supports only == and !=" in ask(r, keypair, "sum", where="department < 'x'").failure


def test_bad_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="empty value"):
        runner(tmp_path, csv=CSV + "A5,,1.00,x\n").listings()
    with pytest.raises(SourceError, match="v.csv"):
        runner(tmp_path, csv="patient_id,age,department\nA,1,x\n").listings()
    with pytest.raises(SourceError):
        runner(tmp_path, csv=CSV + "A5,old,1.00,x\n").listings()


def test_reloads_when_the_file_changes(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    r = runner(tmp_path)
    assert ask(r, keypair, "count").value == 4
    (tmp_path / "v.csv").write_text(CSV + "A5,1,1.00,x\nA6,1,1.00,x\n")
    assert ask(r, keypair, "count").value == 6


def test_parquet_source(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa_
    import pyarrow.parquet as pq

    r = runner(tmp_path)
    table = pa_.table({"patient_id": ["x", "y"], "age": [1, 2], "cost": [1.5, 2.25], "department": ["a", "b"]})
    pq.write_table(table, tmp_path / "v.parquet")
    cfg = r.config.datasets[0].model_copy(update={"source": tmp_path / "v.parquet"})
    assert load(cfg).columns["cost"].tolist() == [1.5, 2.25]


def test_group_by_with_small_groups_suppressed(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    r = runner(tmp_path, min_rows=2)
    out = ask(r, keypair, "sum", group_by=GroupBy("department", ("cardiology", "oncology", "pediatrics"))).outcome
    assert [g.values[0] for g in out.groups] == [Fraction("115.30"), 0, 0]
    assert out.suppressed == {"h": (1, 2)}  # oncology has 1 row, pediatrics none


def test_group_by_small_groups_refused_per_policy(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    r = runner(tmp_path, min_rows=2, small="refuse")
    answer = ask(r, keypair, "sum", group_by=GroupBy("department", ("cardiology", "oncology", "pediatrics")))
    assert "groups under the holder's minimum of 2 rows: oncology, pediatrics" in answer.refusal


def test_group_by_categories_must_match(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    answer = ask(runner(tmp_path), keypair, "sum", group_by=GroupBy("department", ("cardiology", "other")))
    assert "declares categories" in answer.failure


def test_histogram_bins_are_half_open(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    r = runner(tmp_path, min_rows=1)
    out = ask(r, keypair, "histogram", column="age", places=0, bins=("0", "66", "70", "80.5")).outcome
    # ages 70, 30, 80, 66: [0, 66) holds 30; [66, 70) holds 66; [70, 80.5) holds 70 and 80
    assert [g.values[0] for g in out.groups] == [1, 1, 2]


VEC_CONFIG = """
name = "h"
gateway = "127.0.0.1:1"
[[datasets]]
name = "load"
source = "{source}"
columns = [
  {{ name = "ward", type = "string" }},
  {{ name = "hourly", type = "vector", length = 3, decimals = 1 }},
]
[datasets.policy]
allowed_buyers = ["*"]
min_rows = 1
"""


@pytest.mark.parametrize("backend", [Backend.PAILLIER_PACKED, Backend.BFV, Backend.CKKS])
def test_vector_column_from_csv(tmp_path: Path, backend: Backend) -> None:
    (tmp_path / "l.csv").write_text('ward,hourly\nn,"1.5;2;3"\ns, 0.5 ;1;-1\n')
    (tmp_path / "p.toml").write_text(VEC_CONFIG.format(source="l.csv"))
    r = Runner(load_party_config(tmp_path / "p.toml"))
    b, job = make_job("sum", "hourly", dataset="load", places=1, dimension=3, backend=backend)
    answer = r.run("x", job, 1)
    assert answer.payload is not None, answer
    c = contribution_from_proto(common_pb2.EncryptedFigures.FromString(answer.payload))
    (g,) = b.finish(AggregateResult(c.ciphertexts, 1)).groups
    assert [round(float(v), 4) for v in g.values] == [2.0, 3.0, 2.0]


def test_vector_column_from_parquet_and_bad_lengths(tmp_path: Path) -> None:
    import pyarrow as pa_
    import pyarrow.parquet as pq

    pq.write_table(pa_.table({"ward": ["n", "s"], "hourly": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}), tmp_path / "l.parquet")
    (tmp_path / "p.toml").write_text(VEC_CONFIG.format(source="l.parquet"))
    cfg = load_party_config(tmp_path / "p.toml")
    assert load(cfg.datasets[0]).columns["hourly"].tolist() == [[1, 2, 3], [4, 5, 6]]
    (tmp_path / "l.csv").write_text('ward,hourly\nn,"1;2"\n')
    (tmp_path / "p.toml").write_text(VEC_CONFIG.format(source="l.csv"))
    with pytest.raises(SourceError, match="row 1 of vector column 'hourly' has 2 values, the config says 3"):
        Runner(load_party_config(tmp_path / "p.toml")).listings()


def test_failure_reasons_never_quote_the_data(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    r = runner(tmp_path)
    assert r.listings()
    (tmp_path / "v.csv").write_text(CSV + "A9,secret-4711,1.00,x\n")  # the file changes under the node
    answer = ask(r, keypair, "sum")
    assert "cannot be read" in answer.failure and "secret-4711" not in answer.failure
