"""Output privacy over a real gateway and real holders: roles, noise, budgets, bounded literals.

The probe's differencing attack (``sum cost`` against ``sum cost where patient_id != 'P0007'``)
is refused; differencing by a permitted filter meets noise that dwarfs one row; a buyer who
spends its budget is refused until the period renews, across a holder's restart.
"""

from __future__ import annotations

import json
from decimal import Decimal

import grpc
import pytest
from typer.testing import CliRunner

from buyers.client import JobFailed
from datawharf.errors import PermissionDenied
from datawharf.v1 import buyer_pb2, buyer_pb2_grpc, common_pb2
from tests.exchange import Exchange, StartExchange
from tests.jobs import make_job
from wharf.cli import app
from wharf.demo import HOSPITALS, truth

# Generous per job so that a handful of jobs spend a hospital's budget of 1.
DP = "budget = 1.0\nmax_per_job = 0.5\ndefault_per_job = 0.25\nperiod_days = 30"


@pytest.fixture(scope="module")
def exchange(start_exchange: StartExchange) -> Exchange:
    return start_exchange("privacy", rows=400, dp=DP, buyers=("*",))


def test_identifier_differencing_is_refused_at_the_gateway_and_the_catalog_says_why(exchange: Exchange) -> None:
    with exchange.client() as c:
        with pytest.raises(PermissionDenied, match="does not allow filtering on 'patient_id'"):
            c.submit("visits", "cost", "sum", where="patient_id != 'ST-31000007'")
        item = c.item("visits")
    roles = {col.name: col.roles for col in item.columns}
    assert roles["patient_id"] == "join" and roles["cost"].endswith("aggregate, psi-sum")
    assert {h: t.dp for h, t in item.terms.items()} == dict.fromkeys(HOSPITALS, True)
    assert item.terms["st-mary"].budget == 1.0 and item.terms["st-mary"].max_per_job == 0.5


def test_a_noisy_sum_carries_its_declared_noise_and_covers_the_truth(exchange: Exchange) -> None:
    # What the noisy sum estimates: every cost clipped to the declared [-500, 5000].
    exact = float(sum(min(max(Decimal(r["cost"]), Decimal(-500)), Decimal(5000)) for r in exchange.rows_of(HOSPITALS)))
    with exchange.client("dp-reader") as c:
        answers = [c.result(c.submit("visits", "cost", "sum", rho=0.1), timeout_s=90) for _ in range(2)]
    # Bound 5000.00 at rho 0.1 per holder, half of it for the sum (half for the noisy row count), three
    # holders adding full noise: sd = 5000/sqrt(2 * 0.05) * sqrt(3).
    sd = 5000 / 0.1 ** 0.5 * 3 ** 0.5
    for a in answers:
        assert a.noise is not None and a.noise.sd["sum"] == pytest.approx(sd, rel=1e-6)
        assert a.noise.spent == dict.fromkeys(HOSPITALS, 0.1)
        (iv,) = a.groups[0].intervals
        assert iv is not None and iv.low < a.value < iv.high
        assert abs(a.value - exact) < 6 * sd  # fails by chance with probability 2e-9
    assert answers[0].value != answers[1].value  # fresh noise each time
    assert answers[1].noise is not None and answers[1].noise.remaining == dict.fromkeys(HOSPITALS, pytest.approx(0.8))


def test_differencing_by_a_permitted_filter_meets_noise_larger_than_any_row(exchange: Exchange) -> None:
    """Two paired jobs over real processes (the spread over 60 pairs is shown in-process in
    tests/unit/parties/test_runner.py): the difference of 'everyone' and 'everyone under 99' no longer
    reads as the ages of those aged 99, and the budget stops the buyer from averaging the noise away."""
    with exchange.client("differ") as c:
        diffs, sds = [], []
        for _ in range(2):  # each pair spends 0.4 of 1.0 at each holder
            every = c.result(c.submit("visits", "age", "sum", rho=0.2), timeout_s=90)
            but = c.result(c.submit("visits", "age", "sum", where="age < 99", rho=0.2), timeout_s=90)
            diffs.append(every.value - but.value)
            assert every.noise is not None
            sds.append(every.noise.sd["sum"])
        with pytest.raises(JobFailed) as spent:
            c.result(c.submit("visits", "age", "sum", rho=0.3), timeout_s=90)
    truth_diff = float(truth(exchange.rows_of(HOSPITALS), "age", "sum", "")
                       - truth(exchange.rows_of(HOSPITALS), "age", "sum", "age < 99"))
    # One row moves the sum by at most its bound, 120; each answer's noise sd is 120/sqrt(0.2)·sqrt(3) ≈ 465.
    assert sds == [pytest.approx(120 / 0.2 ** 0.5 * 3 ** 0.5)] * 2
    assert truth_diff not in diffs
    assert {t.state for t in spent.value.view.tasks} == {"REFUSED"}
    assert all("privacy budget for 'visits'" in t.reason and "renews" in t.reason for t in spent.value.view.tasks)


def test_a_spent_budget_stays_spent_across_a_holder_restart(exchange: Exchange) -> None:
    with exchange.client("restart-buyer") as c:
        c.result(c.submit("visits", "cost", "mean", rho=0.5, parties=["riverside"]), timeout_s=90)
        c.result(c.submit("visits", "cost", "mean", rho=0.5, parties=["riverside"]), timeout_s=90)
        exchange.stop_party("riverside")
        exchange.start_party("riverside", exchange.config("riverside"))
        exchange.wait_online(["riverside"])
        with pytest.raises(JobFailed) as err:
            c.result(c.submit("visits", "cost", "mean", rho=0.1, parties=["riverside"]), timeout_s=90)
    (task,) = err.value.view.tasks
    assert task.state == "REFUSED" and "rho=0 left of 1" in task.reason


def test_a_filter_literal_bomb_is_refused_on_the_wire(exchange: Exchange) -> None:
    _, job = make_job("sum", "age", keypair=None)
    from datawharf.serde import aggregate_to_proto

    spec = aggregate_to_proto(job)
    spec.where.append(common_pb2.Condition(column="age", op=common_pb2.COMPARISON_LT, number="1e300000"))
    request = exchange.signed(buyer_pb2.SubmitJobRequest(request_id="bomb", aggregate=spec, min_parties=1))
    with exchange.channel() as ch:
        with pytest.raises(grpc.RpcError) as err:
            buyer_pb2_grpc.BuyerServiceStub(ch).SubmitJob(request, timeout=10)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "limited to 30 digits" in (err.value.details() or "")


def test_the_cli_shows_the_noise_and_the_holder_shows_the_budget(exchange: Exchange) -> None:
    ident = exchange.identity("cli-buyer")
    out = CliRunner().invoke(app, ["job", "aggregate", "--dataset", "visits", "--column", "cost", "--stat", "mean",
                                   "--rho", "0.2", "--gateway", exchange.address, "--identity", str(ident)])
    assert out.exit_code == 0, out.output
    assert "95% interval: [" in out.output and "privacy: differentially private" in out.output
    assert "st-mary: spent rho 0.2, 0.8 left until" in out.output
    budget = CliRunner().invoke(app, ["budget", "--config", str(exchange.root / "st-mary.toml"),
                                      "--buyer", "cli-buyer", "--json"])
    assert budget.exit_code == 0, budget.output
    rows = {r["resource"]: r for r in json.loads(budget.output)["budgets"]}
    assert rows["rho"]["spent"] == pytest.approx(0.2) and rows["rho"]["remaining"] == pytest.approx(0.8)
