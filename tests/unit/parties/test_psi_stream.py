"""The holder's streamed answer (parties.psi_stream) gives what protocols.psi.Holder.answer gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from datawharf import buckets
from parties import psi_stream
from protocols import psi


def batches(ids: list[str], size: int = 7) -> list[list[str]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def a_file(tmp_path: Path, points: list[bytes]) -> Path:
    path = tmp_path / "A"
    path.write_bytes(b"".join(points))
    return path


def split(data: bytes) -> list[bytes]:
    return [data[i:i + 32] for i in range(0, len(data), 32)]


@pytest.fixture(autouse=True)
def small_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buckets, "BUCKET_ITEMS", 16)  # several buckets and piles on small sets
    monkeypatch.setattr(psi_stream, "CHUNK", 5)
    monkeypatch.setattr(psi_stream, "READ", 11)


def test_streamed_answer_matches_the_in_memory_one(tmp_path: Path) -> None:
    holder_ids = [f"id-{i}" for i in range(60)] + [" ID-3 ", "id-4"]  # repeats once normalised
    buyer = psi.Buyer([f"id-{i}" for i in range(0, 120, 2)] + ["b-1"])
    a = buyer.blinded() + buyer.commitment()
    key = psi.Key()
    old_d, old_w = psi.Holder(holder_ids, key=key).answer(a[:-2], cardinality_only=False, commitment=a[-2:])
    ans = psi_stream.answer(key, a_file(tmp_path, a), batches(holder_ids), tmp_path, mapper=psi._serial_map,
                            cardinality_only=False, padding=3)
    d, w = split(ans.d.read_bytes()), split(ans.w.read_bytes())
    assert d == old_d  # the buyer's order kept
    assert len(w) == len(old_w) + 3 and ans.rows == len(w) and len(ans.canaries) == psi.CANARIES
    canary_at = {c.position for c in ans.canaries}
    own = {p for i, p in enumerate(w) if i not in canary_at}
    blinded = set(key.hash_and_blind([psi.normalise(x) for x in holder_ids]))
    assert len(own) == 60 + 3 and blinded <= own and len(blinded) == 60 and blinded <= set(old_w)
    z = buyer.reblind(w)
    m = psi.match(b"".join(d), b"".join(z), minimum=1, cardinality_only=False, canaries=ans.canaries)
    assert sorted(buyer.matched(m.positions)) == sorted(f"id-{i}".encode() for i in range(0, 60, 2))
    assert not [p for p in tmp_path.iterdir() if p.name not in ("A", "D", "W")]  # scratch files gone


def test_cardinality_only_shuffles_d(tmp_path: Path) -> None:
    buyer = psi.Buyer([f"x-{i}" for i in range(50)])
    a = buyer.blinded() + buyer.commitment()
    key = psi.Key()
    ans = psi_stream.answer(key, a_file(tmp_path, a), batches(["x-1"]), tmp_path, mapper=psi._serial_map,
                            cardinality_only=True)
    d = split(ans.d.read_bytes())
    assert sorted(d) == sorted(key.blind(a[:-2])) and d != key.blind(a[:-2])


def test_a_repeat_is_refused_where_reblind_refuses_it(tmp_path: Path) -> None:
    buyer = psi.Buyer([f"x-{i}" for i in range(40)])
    points = buyer.blinded()
    points.insert(30, points[4])
    a = points + buyer.commitment()
    key = psi.Key()
    with pytest.raises(psi.RepeatedPoint) as old:
        psi.reblind(key, a[:-2])
    with pytest.raises(psi.RepeatedPoint) as new:
        psi_stream.answer(key, a_file(tmp_path, a), [], tmp_path, mapper=psi._serial_map, cardinality_only=False)
    assert str(new.value) == str(old.value) and "position 30" in str(new.value)


def test_shuffle_and_unique_keep_the_items(tmp_path: Path) -> None:
    items = [bytes([i % 256]) * 31 + bytes([i // 256]) for i in range(300)]
    out = tmp_path / "s"
    buckets.shuffle(iter([b"".join(items)]), 32, out, tmp_path, items=300)
    got = split(out.read_bytes())
    assert sorted(got) == sorted(items) and got != items
    assert buckets.unique(iter([b"".join(items + items[:50])]), 32, out, tmp_path, items=350) == 300
    assert sorted(split(out.read_bytes())) == sorted(items)


def test_id_batches_read_as_load_does(tmp_path: Path) -> None:
    """A holder's ID column in batches (parties.sources.id_batches): trimmed strings, ints as text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from parties.config import load_party_config
    from parties.sources import id_batches, load

    (tmp_path / "v.csv").write_text("pid,n\n A1 ,1\nb2,22\nC3 , 333\n")
    pq.write_table(pa.table({"pid": [" A1 ", "b2", "C3 "], "n": [1, 22, 333]}), tmp_path / "v.parquet")
    for source in ("v.csv", "v.parquet"):
        (tmp_path / "p.toml").write_text(f"""name = "h"
gateway = "127.0.0.1:1"
[[datasets]]
name = "v"
source = "{source}"
columns = [{{ name = "pid", type = "string", join_key = true }}, {{ name = "n", type = "int", join_key = true }}]
[datasets.policy]
allowed_buyers = ["*"]
""")
        (ds,) = load_party_config(tmp_path / "p.toml").datasets
        table = load(ds)
        for column in ("pid", "n"):
            got = [x for batch in id_batches(ds, column, batch_rows=2) for x in batch]
            assert got == [str(v) for v in table.columns[column].tolist()]
