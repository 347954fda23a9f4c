"""The gateway's bucketed repeat check and match agree with plain set logic (gateway.jobs.psi_buckets)."""

from __future__ import annotations

import secrets
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from datawharf import buckets as psi_buckets
from protocols.psi import first_repeat_packed
from protocols.psi_stages import canonical_u

ITEM = 32


def chunks(data: bytes, per: int = 1000):  # type: ignore[no-untyped-def]
    return iter([data[i:i + per * ITEM] for i in range(0, len(data), per * ITEM)])


def points(n: int) -> list[bytes]:
    return [secrets.token_bytes(ITEM) for _ in range(n)]


@pytest.fixture(autouse=True)
def small_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psi_buckets, "BUCKET_ITEMS", 256)  # many buckets and splits on small sets


def test_match_is_the_set_intersection(tmp_path: Path) -> None:
    hay = points(5000)
    needles = points(3000) + hay[::3]
    needles = [needles[i] for i in np.random.default_rng(1).permutation(len(needles))]
    got = psi_buckets.positions_in(chunks(b"".join(needles)), chunks(b"".join(hay)), ITEM, tmp_path,
                                   items=len(needles))
    want = sorted(i for i, x in enumerate(needles) if x in set(hay))
    assert got.tolist() == want
    assert not any(tmp_path.iterdir())  # the buckets are gone


@pytest.mark.parametrize("lead", [1, 2, 31])
def test_skewed_sets_split_and_still_match(tmp_path: Path, lead: int) -> None:
    """Items sharing their first ``lead`` bytes fall in one bucket, which is split again byte by byte."""
    prefix = secrets.token_bytes(lead)
    hay = list({prefix + secrets.token_bytes(ITEM - lead) for _ in range(2000)})
    needles = hay[1::2] + [prefix + secrets.token_bytes(ITEM - lead) for _ in range(100)]
    needles = list(dict.fromkeys(needles))
    got = psi_buckets.positions_in(chunks(b"".join(needles)), chunks(b"".join(hay)), ITEM, tmp_path,
                                   items=len(hay))
    assert got.tolist() == [i for i, x in enumerate(needles) if x in set(hay)]
    data = b"".join(needles + [needles[7]])
    assert psi_buckets.first_repeat(chunks(data), ITEM, tmp_path, items=len(needles) + 1) == len(needles)


def test_first_repeat_across_buckets_is_the_first_overall(tmp_path: Path) -> None:
    items = points(4000)
    # Two repeats in different buckets; the earlier repeat wins wherever its bucket lies.
    items.insert(3000, items[10])
    items.insert(2500, items[20])
    data = b"".join(items)
    assert first_repeat_packed(data, ITEM) == 2500
    assert psi_buckets.first_repeat(chunks(data), ITEM, tmp_path, items=len(items)) == 2500
    assert psi_buckets.first_repeat(chunks(b"".join(points(3000))), ITEM, tmp_path, items=3000) is None


def test_empty_sets_and_empty_buckets(tmp_path: Path) -> None:
    assert psi_buckets.positions_in(iter([]), iter([]), ITEM, tmp_path, items=0).tolist() == []
    assert psi_buckets.first_repeat(iter([]), ITEM, tmp_path, items=0) is None
    low = [bytes([0]) + secrets.token_bytes(ITEM - 1) for _ in range(600)]  # every item in bucket 0
    high = [bytes([255]) + secrets.token_bytes(ITEM - 1) for _ in range(600)]
    got = psi_buckets.positions_in(chunks(b"".join(low + high)), chunks(b"".join(high)), ITEM, tmp_path,
                                   items=1200)
    assert got.tolist() == list(range(600, 1200))


def test_canonical_repeats_of_stage_a(tmp_path: Path) -> None:
    """Two encodings of one u-coordinate (top bit set) repeat once canonical."""
    items = points(1000)
    twin = bytearray(items[5])
    twin[31] ^= 0x80
    data = b"".join(items + [bytes(twin)])
    assert psi_buckets.first_repeat(chunks(data), ITEM, tmp_path, items=1001) in (None, 1000)
    assert psi_buckets.first_repeat(chunks(data), ITEM, tmp_path, items=1001, transform=canonical_u) == 1000


def test_memory_is_a_buckets_not_the_sets(tmp_path: Path) -> None:
    """tracemalloc's peak while matching 2^17 items is about what 2^15 take: buckets, not sets, in memory."""
    def peak(n: int) -> int:
        data = np.random.default_rng(n).integers(0, 256, n * ITEM, dtype=np.uint8).tobytes()
        path = tmp_path / f"set{n}"
        path.write_bytes(data)
        del data
        tracemalloc.start()
        psi_buckets.positions_in(psi_buckets.read_chunks(path, ITEM, 4096), psi_buckets.read_chunks(path, ITEM, 4096),
                                 ITEM, tmp_path, items=n)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    psi_buckets.BUCKET_ITEMS = 1 << 12  # (the fixture's monkeypatch restores it)
    small, large = peak(1 << 15), peak(1 << 17)
    assert large < 1.5 * small + (2 << 20)  # the matched positions (8 bytes each) grow; the rest does not
