"""The leak finder the wire tests rely on must itself find what is there."""

import os

from tests.leaks import find_any


def test_finds_planted_patterns_at_any_offset() -> None:
    noise = os.urandom(100_000)
    planted = [b"P-000123", b"12.50", b"\x01\x02\x03\x04\x05\x06\x07\x08\x09", b"x", b"ab"]
    blob = planted[0] + noise[:5000] + planted[1] + noise[5000:9001] + planted[2] + noise[9001:] + planted[3] + planted[4]
    absent = [b"P-999999", b"77.77.77", b"\xff" * 12]
    assert find_any(blob, planted + absent) == set(planted)


def test_nothing_in_empty_blob() -> None:
    assert find_any(b"", [b"abc"]) == set()
