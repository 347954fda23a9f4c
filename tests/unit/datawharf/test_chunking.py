import pytest

from datawharf.chunking import Assembler, ChunkError, Piece, TooLarge, split


def test_split_and_reassemble() -> None:
    data = bytes(range(256)) * 100
    pieces = list(split(data, 1000))
    assert len(pieces) == 26 and pieces[-1].last and not pieces[0].last
    a = Assembler(len(data))
    out = [a.add(p) for p in pieces]
    assert out[-1] == data and all(o is None for o in out[:-1])


def test_empty_payload_is_one_piece() -> None:
    (p,) = split(b"")
    assert Assembler(10).add(p) == b""


@pytest.mark.parametrize("seqs", [[1], [0, 0], [0, 2]])
def test_out_of_order_or_repeated(seqs: list[int]) -> None:
    a = Assembler(100)
    with pytest.raises(ChunkError, match="expected"):
        for s in seqs:
            a.add(Piece(s, b"x", False))


def test_size_limit() -> None:
    a = Assembler(5)
    a.add(Piece(0, b"abc", False))
    with pytest.raises(TooLarge, match="5 bytes"):
        a.add(Piece(1, b"abc", True))


def test_nothing_after_last() -> None:
    a = Assembler(5)
    a.add(Piece(0, b"a", True))
    with pytest.raises(ChunkError, match="after the last"):
        a.add(Piece(1, b"a", True))


def test_whole_items_only() -> None:
    a = Assembler(100, item=32)
    a.add(Piece(0, b"x" * 64, False))
    with pytest.raises(ChunkError, match="32-byte items"):
        a.add(Piece(1, b"x" * 33, True))


def test_counting_mode_keeps_nothing_but_still_checks() -> None:
    a = Assembler(64, item=32, keep=False)
    assert a.add(Piece(0, b"x" * 32, False)) is None
    assert a.add(Piece(1, b"y" * 32, True)) == b"" and a.size == 64
    b = Assembler(64, item=32, keep=False)
    b.add(Piece(0, b"x" * 64, False))
    with pytest.raises(TooLarge):
        b.add(Piece(1, b"x" * 32, True))
