from fractions import Fraction

from wharf.cli import exact_text


def test_exact_text() -> None:
    assert exact_text(Fraction(649722067, 100)) == "6497220.67"
    assert exact_text(Fraction(-1, 8)) == "-0.125"
    assert exact_text(Fraction(5)) == "5"
    assert exact_text(Fraction(1, 3)) == "1/3"
    assert Fraction(exact_text(Fraction(22, 7))) == Fraction(22, 7)
