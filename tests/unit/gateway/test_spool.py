from pathlib import Path

import pytest

from gateway.spool import Spool, SpoolError


def test_stage_lifecycle(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    assert not sp.append("j1", "A", 0, b"a" * 64, False, item=32, max_items=10)
    assert sp.append("j1", "A", 1, b"b" * 32, True, item=32, max_items=10)
    assert sp.items("j1", "A", 32) == [b"a" * 32, b"a" * 32, b"b" * 32]
    assert [c[2] for c in sp.chunks("j1", "A", 32)] == [True]
    with pytest.raises(SpoolError, match="already received"):
        sp.append("j1", "A", 0, b"x" * 32, True, item=32, max_items=10)
    sp.drop("j1")
    assert not sp.has("j1", "A")


def test_bad_chunks(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    with pytest.raises(SpoolError, match="stage A: piece 1 arrived where piece 0"):
        sp.append("j", "A", 1, b"a" * 32, True, item=32, max_items=10)
    with pytest.raises(SpoolError, match="whole number"):
        sp.append("j", "A", 0, b"a" * 33, True, item=32, max_items=10)
    with pytest.raises(SpoolError, match="limit of 1 items"):
        sp.append("j", "A", 0, b"a" * 64, True, item=32, max_items=1)
    with pytest.raises(SpoolError, match="bad stage"):
        sp.append("../x", "A", 0, b"", True, item=32, max_items=1)


def test_reset_allows_a_fresh_start(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    sp.append("j", "D", 0, b"a" * 32, False, item=32, max_items=10)
    sp.reset("j", "D")
    assert sp.append("j", "D", 0, b"b" * 32, True, item=32, max_items=10)
    assert sp.read("j", "D") == b"b" * 32


def test_empty_stage_streams_one_last_chunk(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    sp.append("j", "S", 0, b"", True, item=1, max_items=10)
    assert list(sp.chunks("j", "S", 1)) == [(0, b"", True)]
