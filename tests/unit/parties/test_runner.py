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
from parties.budget import BudgetBook, Limit
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
  {{ name = "patient_id", type = "string", identifier = true }},
  {{ name = "age", type = "int", aggregate = true, filter = ["<", ">=", "=="], bounds = [0, 120] }},
  {{ name = "cost", type = "decimal", decimals = 2, aggregate = true, bounds = [-100, 1000] }},
  {{ name = "department", type = "string", categories = ["cardiology", "oncology", "pediatrics"], group = true, filter = ["==", "!="] }},
]
[datasets.policy]
allowed_buyers = ["acme"]
allowed_statistics = ["sum", "mean", "count", "histogram"]
min_rows = {min_rows}
min_parties = {min_parties}
small_groups = "{small}"
list_suppressed = {listed}
[datasets.policy.dp]
{dp}
"""


@pytest.fixture(scope="module")
def keypair():  # type: ignore[no-untyped-def]
    return generate_keypair(2048)  # Blum primes, so the buyer can prove its modulus


def runner(tmp_path: Path, csv: str = CSV, min_rows: int = 2, min_parties: int = 1, small: str = "suppress",
           dp: str = "enabled = false", listed: bool = True, clock=None) -> Runner:  # type: ignore[no-untyped-def]
    (tmp_path / "v.csv").write_text(csv)
    (tmp_path / "p.toml").write_text(CONFIG.format(min_rows=min_rows, min_parties=min_parties, small=small, dp=dp,
                                                   listed=str(listed).lower()))
    cfg = load_party_config(tmp_path / "p.toml")
    book = BudgetBook(cfg.state_dir, clock=clock) if clock is not None else None  # type: ignore[arg-type]
    return Runner(cfg, budget=book)


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
    refusal = ask(r, keypair, "sum", where="age < 40").refusal
    # The rule, not the count nor the threshold: a refusal answers no question about the data.
    assert refusal == "the filter matches fewer rows than the holder's minimum (min_rows)"
    r2 = runner(tmp_path, min_parties=3)
    assert "at least 3 holders" in ask(r2, keypair, "sum", min_parties=2).refusal


def test_unknown_column_is_a_failure_not_a_crash(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    r = runner(tmp_path)
    assert "column 'weight'" in ask(r, keypair, "sum", column="weight").failure
    assert "filter column 'zip'" in ask(r, keypair, "sum", where="zip == 1").failure
    assert "holds text; compare it with a quoted string" in ask(r, keypair, "sum", where="department == 3").failure
    assert "is numeric; compare it with a number" in ask(r, keypair, "sum", where="age == 'old'").failure
    assert "may be filtered only with == !=" in ask(r, keypair, "sum", where="department < 'x'").refusal


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
    assert "fewer rows than the holder's minimum (min_rows): oncology, pediatrics" in answer.refusal


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
  {{ name = "hourly", type = "vector", length = 3, decimals = 1, aggregate = true }},
]
[datasets.policy]
allowed_buyers = ["*"]
min_rows = 1
[datasets.policy.dp]
enabled = false
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


# ------------------------------------------------------------ column roles
def test_identifiers_and_ungranted_roles_are_refused_before_any_row_is_read(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    r = runner(tmp_path)
    # The differencing attack: everyone but one patient. An identifier is never a filter.
    refused = ask(r, keypair, "sum", where="patient_id != 'A2'")
    assert refused.code == "column_role" and "does not allow filtering on 'patient_id'" in refused.refusal
    assert ask(r, keypair, "sum", where="age <= 40").code == "column_role"  # <= not granted, < and >= are
    assert "does not allow aggregating 'patient_id'" in ask(r, keypair, "mean", column="patient_id").refusal
    assert ask(r, keypair, "count", column="patient_id").rows == 4  # a count reads no value
    assert "may be filtered only with == !=" in ask(r, keypair, "sum", where="department < 'x'").refusal


def test_numeric_literals_are_clamped_to_the_bounds_and_bounded_in_size(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    from decimal import Decimal

    from datawharf.filters import Condition, Op
    from parties.runner import row_mask

    r = runner(tmp_path)
    table = r.sources["visits"].table()
    bounds = {"age": (Decimal(0), Decimal(120))}
    age = Condition("age", Op.LT, Decimal("1e25"))
    assert row_mask(table, (age,), bounds).tolist() == [True] * 4
    assert row_mask(table, (Condition("age", Op.GE, Decimal("-1e20")),), bounds).tolist() == [True] * 4
    assert row_mask(table, (Condition("age", Op.GE, Decimal("1e20")),), bounds).tolist() == [False] * 4
    # The literal bomb: 8 bytes that once cost seconds of CPU are refused before any comparison.
    with pytest.raises(Exception, match="limited to 30 digits"):
        row_mask(table, (Condition("age", Op.LT, Decimal("1e300000")),), bounds)


def test_unlisted_suppression_names_no_group(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    r = runner(tmp_path, small="refuse", listed=False)
    answer = ask(r, keypair, "sum", group_by=GroupBy("department", ("cardiology", "oncology", "pediatrics")))
    assert answer.refusal == "some groups have fewer rows than the holder's minimum (min_rows)"
    (tmp_path / "2").mkdir()
    r2 = runner(tmp_path / "2", listed=False)
    out = ask(r2, keypair, "sum", group_by=GroupBy("department", ("cardiology", "oncology", "pediatrics")))
    assert out.outcome.suppressed == {}  # zeroed, but not said which


# ---------------------------------------------------- differential privacy
DP_ON = "budget = 1.0\nmax_per_job = 0.5\ndefault_per_job = 0.1\nperiod_days = 30"
# Enough rows that the noisy count (sd of a few rows) never falls under min_rows = 2.
MANY = "patient_id,age,cost,department\n" + "".join(f"M{i},{20 + i % 60},{i % 90}.25,oncology\n" for i in range(400))


def test_dp_answers_are_noisy_declared_and_charged(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    r = runner(tmp_path, csv=MANY, dp=DP_ON)
    b, job = make_job("sum", "cost", keypair=keypair)
    answer = r.run("acme", job, 1, "job-1")
    assert answer.payload is not None and answer.noise is not None and not answer.noise.exact
    # Sensitivity 1000.00 (the larger bound, in hundredths) at rho 0.1, half of it for the noisy row count
    # the minimum is judged on: sigma = 100000 / sqrt(2 * 0.05).
    assert answer.noise.rho == 0.1 and answer.noise.part_sd[0] == pytest.approx(100_000 / 0.1 ** 0.5, rel=1e-6)
    assert answer.noise.remaining == pytest.approx(0.9)
    # Opted out: exact answers, declared as such.
    (tmp_path / "plain").mkdir()
    plain = runner(tmp_path / "plain", dp="enabled = false")
    assert ask(plain, keypair, "sum").value == Fraction("94.80")
    assert plain.run("acme", job, 1, "j").noise.exact  # type: ignore[union-attr]


def test_a_buyer_spending_to_the_limit_is_refused_next_until_the_budget_renews(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    now = [40 * 30 * 86400.0]
    r = runner(tmp_path, csv=MANY, dp=DP_ON, clock=lambda: now[0])
    _, job = make_job("sum", "cost", keypair=keypair, rho=0.5)
    assert r.run("acme", job, 1, "a").payload is not None
    assert r.run("acme", job, 1, "b").payload is not None
    refused = r.run("acme", job, 1, "c")
    assert refused.code == "dp_budget" and "rho=0 left of 1" in refused.refusal and "renews" in refused.refusal
    _, greedy = make_job("sum", "cost", keypair=keypair, rho=0.6)
    assert r.run("acme", greedy, 1, "d").code == "dp_per_job"
    # A restarted holder remembers; the next period starts afresh.
    again = runner(tmp_path, csv=MANY, dp=DP_ON, clock=lambda: now[0])
    assert again.run("acme", job, 1, "e").code == "dp_budget"
    now[0] += 30 * 86400.0
    assert again.run("acme", job, 1, "f").payload is not None


def test_noise_hides_one_row_across_repeated_draws(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    """Differencing two filters that differ by one row: the difference's spread dwarfs the row.

    60 paired draws of the real holder path; the spread's estimate is within 40 % of sqrt(2)·sigma
    unless a 4-sigma event of the chi distribution happens."""
    import statistics

    r = runner(tmp_path, min_rows=1, dp="budget = 100.0\nmax_per_job = 0.5\ndefault_per_job = 0.1")
    everyone = make_job("sum", "age", keypair=keypair)
    but_one = make_job("sum", "age", where="age < 80", keypair=keypair)  # drops A3, aged 80

    def value(buyer, job) -> float | None:  # type: ignore[no-untyped-def]
        answer = r.run("acme", job, 1, "j")
        if answer.payload is None:  # the minimum, judged on a noisy count of these few rows
            assert answer.code == "min_rows", answer
            return None
        c = contribution_from_proto(common_pb2.EncryptedFigures.FromString(answer.payload))
        return float(buyer.finish(AggregateResult(c.ciphertexts, 1, {})).groups[0].values[0])

    diffs: list[float] = []
    for _ in range(400):  # about a quarter of the answers are refusals; stop at 60 answered pairs
        a, b = value(*everyone), value(*but_one)
        if a is not None and b is not None:
            diffs.append(a - b)
        if len(diffs) == 60:
            break
    assert len(diffs) == 60
    sigma = 120 / (2 * 0.05) ** 0.5  # bound 120 at rho 0.1, half of it for the noisy count: about 379
    spread = statistics.pstdev(diffs)
    assert spread == pytest.approx(2 ** 0.5 * sigma, rel=0.4)
    assert spread > 2 * 80  # the difference no longer reads as the 80 it is without noise
    assert sum(abs(d - 80) < 8 for d in diffs) < 10  # within 10 % of the truth: about 3 % of draws


def test_a_job_asking_more_figures_than_the_holder_computes_is_refused(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    r = runner(tmp_path)
    r.config.datasets[0].policy.__dict__["max_figures"] = 2  # frozen config: a test-only override
    refused = ask(r, keypair, "mean", group_by=GroupBy("department", ("cardiology", "oncology", "pediatrics")))
    assert refused.code == "max_figures" and "6 figures" in refused.refusal


def test_the_minimum_rows_rule_is_no_free_oracle_under_dp(tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    """A buyer probing whether a tenth row is present (min_rows = 10) with a tiny spend: the rule is
    judged on a noisy count paid from the spend, so with and without the row answer alike, and every
    probe, refused or not, is charged."""
    header, row = "patient_id,age,cost,department\n", "P{},{},10.00,cardiology\n"
    nine = header + "".join(row.format(i, 30 + i) for i in range(9))
    ten = nine + row.format(9, 99)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    dp_on = "budget = 100.0\nmax_per_job = 1.0\ndefault_per_job = 0.01"
    runners = {"without": runner(tmp_path / "a", csv=nine, min_rows=10, dp=dp_on),
               "with": runner(tmp_path / "b", csv=ten, min_rows=10, dp=dp_on)}
    _, probe = make_job("count", "cost", keypair=keypair, rho=0.02)
    answered = {}
    for name, r in runners.items():
        outcomes = [r.run("acme", probe, 1, f"p{i}") for i in range(200)]
        answered[name] = sum(o.payload is not None for o in outcomes) / 200
        assert all(o.payload is not None or o.code == "min_rows" for o in outcomes)
        spent = r.budget.balance("acme", "visits", Limit("rho", 100.0, 30 * 86400)).spent
        assert spent == pytest.approx(200 * 0.02)  # refusals cost the same spend as answers
    # Noisy counts of sd 10 around 9 and 10: about 46 % and 50 % answered. Exact counts gave 0 % and 100 %.
    assert abs(answered["with"] - answered["without"]) < 0.2, answered
