"""Multi-holder PSI, every hop in one process: five holders against the plaintext truth."""

from __future__ import annotations

import random

import pytest

from protocols import psi, psi_multi, psi_sum

HOLDERS = ("h1", "h2", "h3", "h4", "h5")


def _sets(seed: int = 7) -> tuple[list[str], dict[str, dict[str, int]]]:
    """The buyer's IDs, and per holder its (ID → value) rows: each pool ID at a random subset of holders."""
    rng = random.Random(seed)
    pool = [f"P-{i:04d}" for i in range(120)]
    rows: dict[str, dict[str, int]] = {h: {} for h in HOLDERS}
    for ident in pool:
        for h in rng.sample(HOLDERS, rng.randint(0, 5)):
            rows[h][ident] = rng.randint(-50, 500)
    buyer = [p if i % 4 else f"  {p.lower()} " for i, p in enumerate(pool[:90])] + [f"X-{i}" for i in range(30)]
    rng.shuffle(buyer)
    return buyer, rows


def _truth(buyer: list[str], rows: dict[str, dict[str, int]], t: int) -> set[str]:
    ids = {b.strip().upper() for b in buyer}
    return {i for i in ids if sum(i in rows[h] for h in HOLDERS) >= t}


def _run(buyer_ids: list[str], rows: dict[str, dict[str, int]], *, t: int, cardinality_only: bool
         ) -> tuple[psi.Buyer, psi_multi.MultiMatch]:
    buyer = psi.Buyer(buyer_ids)
    a = buyer.blinded()
    answers = []
    for h in HOLDERS:
        holder = psi.Holder(list(rows[h]))
        d, w = holder.answer(a, cardinality_only=cardinality_only, commitment=buyer.commitment(), keep_order=True)
        answers.append(psi_multi.HolderStages(h, d, buyer.reblind(w), minimum=1, canaries=holder.canaries))
    return buyer, psi_multi.match_many(answers, at_least=t, cardinality_only=cardinality_only)


@pytest.mark.parametrize("t", [5, 3, 1])
def test_threshold_intersection_matches_the_plaintext_truth(t: int) -> None:
    ids, rows = _sets()
    truth = _truth(ids, rows, t)
    buyer, m = _run(ids, rows, t=t, cardinality_only=False)
    assert m.size == len(truth) > 0
    assert {x.decode().upper() for x in buyer.matched(m.positions)} == truth
    norm = {b.strip().upper() for b in ids}
    assert m.per_holder == tuple(len(norm & set(rows[h])) for h in HOLDERS)


def test_cardinality_only_releases_the_count_alone() -> None:
    ids, rows = _sets(seed=8)
    _, m = _run(ids, rows, t=4, cardinality_only=True)
    assert m.positions == () and m.size == len(_truth(ids, rows, 4))


def test_join_and_sum_over_holders_that_have_the_id() -> None:
    ids, rows = _sets(seed=9)
    t = 3
    buyer = psi_sum.Buyer(ids)
    a = buyer.blinded()
    answers, sealed = [], []
    for h in HOLDERS:
        holder = psi_sum.Holder([(i, [v, 2 * v]) for i, v in rows[h].items()])
        ans = holder.answer(a, buyer.box.public, b"job", minimum=1, padding=3, count=2, noise=[0, 0],
                            commitment=buyer.commitment(), keep_order=True)
        z = buyer.reblind(ans.for_buyer_w)
        answers.append(psi_multi.HolderStages(h, ans.for_gateway_d, z, minimum=1, offset=0,
                                              canaries=ans.canaries, masked=ans.for_gateway_masked,
                                              counted=ans.counted))
        sealed.append((ans.for_buyer_sealed_seed, len(z)))
    got = psi_multi.sum_many(answers, at_least=t)
    truth = _truth(ids, rows, t)
    expect = sum(rows[h][i] for i in truth for h in HOLDERS if i in rows[h])
    assert got.size == len(truth)
    parts = [(r, s, n) for r, (s, n) in zip(got.holders, sealed)]
    assert psi_multi.totals(buyer, parts, b"job") == (expect, 2 * expect)
    # Each holder's J covers its rows of the threshold IDs and the three rows it asked to count.
    for h, r in zip(HOLDERS, got.holders):
        assert len(r.positions) == len(truth & set(rows[h])) + 3


def test_a_forged_reblinding_at_one_holder_names_it() -> None:
    ids, rows = _sets()
    buyer = psi.Buyer(ids)
    a = buyer.blinded()
    answers = []
    for h in HOLDERS[:2]:
        holder = psi.Holder(list(rows[h]))
        d, w = holder.answer(a, cardinality_only=False, commitment=buyer.commitment(), keep_order=True)
        z = buyer.reblind(w) if h == "h1" else psi.Key().blind(w)  # h2's W under another scalar
        answers.append(psi_multi.HolderStages(h, d, z, canaries=holder.canaries))
    with pytest.raises(psi.ForgedReblinding, match="for h2"):
        psi_multi.match_many(answers, at_least=2, cardinality_only=False)


def test_noise_on_released_positions_and_minimum() -> None:
    p = psi.Key().blind([psi.BASES[0]])
    one = psi_multi.HolderStages("a", p, p, minimum=1, offset=2)
    with pytest.raises(psi.PsiError, match="hides nothing"):
        psi_multi.match_many([one, one], at_least=1, cardinality_only=False)
    assert psi_multi.match_many([one, one], at_least=2, cardinality_only=True).size == 1 + 4
    high = psi_multi.HolderStages("b", p, p, minimum=10)
    with pytest.raises(psi.BelowMinimum):
        psi_multi.match_many([high, psi_multi.HolderStages("a", p, p)], at_least=1, cardinality_only=False)


@pytest.mark.parametrize("holders, t, match", [
    (("a", "b"), 3, "not between 1 and the 2"),
    (("a", "a", "b"), 2, "named twice"),
    (("a",), 1, "at least two holders"),
    (tuple(f"h{i}" for i in range(17)), 2, "at most 16"),
    (("a", ""), 1, "empty"),
])
def test_check_holders_refuses(holders: tuple[str, ...], t: int, match: str) -> None:
    with pytest.raises(psi_multi.HolderError, match=match):
        psi_multi.check_holders(holders, t)


def test_check_holders_reads_zero_as_all() -> None:
    assert psi_multi.check_holders(("a", "b", "c"), 0) == 3
    assert psi_multi.check_holders(("a", "b", "c"), 2) == 2
    with pytest.raises(psi_multi.HolderError):
        psi_multi.threshold(__import__("numpy").zeros(3), 0)
