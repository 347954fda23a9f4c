"""The committed stubs must be exactly what `make proto` generates."""

from pathlib import Path

from datawharf import protoc


def test_generated_stubs_are_current(tmp_path: Path) -> None:
    protoc.generate(tmp_path)
    committed = protoc.ROOT / "datawharf" / "v1"
    generated = sorted(p.relative_to(tmp_path / "datawharf" / "v1") for p in (tmp_path / "datawharf" / "v1").iterdir())
    assert generated, "protoc produced nothing"
    stale = [str(p) for p in generated if (committed / p).read_bytes() != (tmp_path / "datawharf" / "v1" / p).read_bytes()]
    assert not stale, f"stubs out of date: {stale}; run `make proto` and commit"
