"""The holder's side of a task: policy, data, filter, encryption."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from phe import paillier

from datawharf.config import load_party_config
from datawharf.filters import parse
from datawharf.model import AggregateJob
from datawharf.serde import figures_from_proto
from datawharf.v1 import common_pb2
from parties.runner import Runner
from parties.sources import SourceError, load
from protocols import paillier_aggregate as pa

CSV = """patient_id,age,cost,department
A1,70,100.25,cardiology
A2,30,-20.50,oncology
A3,80,10.00,cardiology
A4, 66 ,5.05, cardiology
"""

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
  {{ name = "department", type = "string" }},
]
[datasets.policy]
allowed_buyers = ["acme"]
allowed_statistics = ["sum", "mean", "count"]
min_rows = {min_rows}
min_parties = {min_parties}
"""


@pytest.fixture(scope="module")
def keypair():  # type: ignore[no-untyped-def]
    return paillier.generate_paillier_keypair(n_length=2048)


def runner(tmp_path: Path, csv: str = CSV, min_rows: int = 2, min_parties: int = 1) -> Runner:
    (tmp_path / "v.csv").write_text(csv)
    (tmp_path / "p.toml").write_text(CONFIG.format(min_rows=min_rows, min_parties=min_parties))
    return Runner(load_party_config(tmp_path / "p.toml"))


def ask(r: Runner, keypair, stat: str, column: str = "cost", where: str = "", buyer: str = "acme", min_parties: int = 1):  # type: ignore[no-untyped-def]
    b = pa.Buyer(pa.Statistic(stat), 2, keypair=keypair)
    job = AggregateJob("visits", column, pa.Statistic(stat), tuple(parse(where)), 2, b.request.public_n)
    answer = r.run(buyer, job, min_parties)
    if answer.payload is None:
        return answer
    figures = figures_from_proto(common_pb2.EncryptedFigures.FromString(answer.payload), b.request.public_n)
    return b.finish(pa.AggregateResult(figures))


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
    assert "wrong kind" in ask(r, keypair, "sum", where="department == 3").failure


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
