"""Unbalanced PSI under an OPRF: correctness, key epochs, and bad input."""

import pytest

from protocols import oprf, psi


def test_query_against_a_published_table() -> None:
    holder = [f"sub-{i}" for i in range(2000)]
    key = oprf.HolderKey()
    table = key.table(holder)
    buyer = oprf.Buyer([f"sub-{i}" for i in range(0, 4000, 7)] + ["SUB-14 "])
    tags = buyer.tags(key.evaluate(buyer.blinded()))
    m = oprf.lookup(table, tags, minimum=1, cardinality_only=False)
    got = {x.decode() for x in buyer.matched(m.positions)}
    assert got == {f"sub-{i}" for i in range(0, 2000, 7)}


def test_new_epoch_changes_every_tag() -> None:
    a, b = oprf.HolderKey(), oprf.HolderKey()
    assert not a.table(["x", "y"]) & b.table(["x", "y"])
    buyer = oprf.Buyer(["x"])
    tags = buyer.tags(a.evaluate(buyer.blinded()))
    assert oprf.lookup(b.table(["x"]), tags, minimum=0, cardinality_only=True).size == 0


def test_blinding_hides_the_query() -> None:
    b1, b2 = oprf.Buyer(["x"]), oprf.Buyer(["x"])
    assert b1.blinded() != b2.blinded()  # fresh r per query


def test_bad_points_and_counts() -> None:
    key = oprf.HolderKey()
    with pytest.raises(psi.InvalidPoint, match="value 0"):
        key.evaluate([bytes(32)])
    with pytest.raises(psi.InvalidPoint):
        key.evaluate([b"\x01" * 31])
    with pytest.raises(psi.PsiError, match="2 evaluations for 1"):
        oprf.Buyer(["x"]).tags([b"a" * 32, b"b" * 32])
    with pytest.raises(psi.BelowMinimum):
        oprf.lookup(set(), [b"t" * 16], minimum=1, cardinality_only=False)
