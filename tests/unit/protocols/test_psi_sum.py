"""Join-and-sum whole, in one process, against the plaintext join."""

from __future__ import annotations

import random

import pytest

from protocols import psi, psi_sum


def run(buyer_ids, rows, *, minimum=0):  # type: ignore[no-untyped-def]
    b = psi_sum.Buyer(buyer_ids)
    h = psi_sum.Holder(rows)
    a = b.blinded()
    ans = h.answer(a, b.box.public, b"job-1", minimum=minimum)
    z = b.reblind(ans.for_buyer_w)
    res = psi_sum.gateway_sum(ans.for_gateway_d, z, ans.for_gateway_masked, minimum=minimum)
    return res, b.totals(res, ans.for_buyer_sealed_seed, b"job-1", len(ans.for_buyer_w)), ans


def test_sums_match_the_plaintext_join() -> None:
    rng = random.Random(4)
    rows = [(f"p{i}", (rng.randint(-10**6, 10**6), rng.randint(0, 10**9))) for i in range(400)]
    buyer = [f"p{i}" for i in range(0, 800, 3)]
    res, totals, _ = run(buyer, rows)
    matched = [r for r in rows if r[0] in set(buyer)]
    assert res.size == len(matched)
    assert totals == (sum(r[1][0] for r in matched), sum(r[1][1] for r in matched))


def test_the_buyer_never_sees_a_masked_value_and_masks_hide_values() -> None:
    rows = [("a", (5,)), ("b", (5,))]
    _, _, ans = run(["a"], rows)
    assert ans.for_gateway_masked[0] != ans.for_gateway_masked[1]  # equal values, unrelated masked forms
    assert all(0 <= c[0] < psi_sum.MODULUS for c in ans.for_gateway_masked)


def test_repeated_holder_ids_are_summed_and_minimum_enforced() -> None:
    res, totals, _ = run(["x", "y"], [("x", (1,)), ("X ", (2,)), ("z", (7,))])
    assert res.size == 1 and totals == (3,)
    with pytest.raises(psi.BelowMinimum):
        run(["x"], [("x", (1,)), ("y", (2,))], minimum=2)


def test_seed_is_bound_to_buyer_and_job() -> None:
    b = psi_sum.Buyer(["a"])
    sealed = psi_sum.seal(b"s" * 32, b.box.public, b"job-1")
    assert b.box.open(sealed, b"job-1") == b"s" * 32
    with pytest.raises(psi_sum.SealError):
        b.box.open(sealed, b"job-2")
    with pytest.raises(psi_sum.SealError):
        psi_sum.BoxKey().open(sealed, b"job-1")
    with pytest.raises(psi_sum.SealError):
        b.box.open(sealed[:-1] + bytes([sealed[-1] ^ 1]), b"job-1")


def test_gateway_refuses_inflated_selections() -> None:
    b = psi_sum.Buyer(["a", "b"])
    h = psi_sum.Holder([("a", (1,)), ("c", (2,))])
    ans = h.answer(b.blinded(), b.box.public, b"j", minimum=0)
    z = b.reblind(ans.for_buyer_w)
    matching = next(v for v in z if v in set(ans.for_gateway_d))
    with pytest.raises(psi.InvalidPoint, match="repeats"):
        psi_sum.gateway_sum(ans.for_gateway_d, [matching, matching], ans.for_gateway_masked, minimum=0)
    with pytest.raises(psi.InvalidPoint, match="re-blinded 1 values for 2"):
        psi_sum.gateway_sum(ans.for_gateway_d, z[:1], ans.for_gateway_masked, minimum=0)
