from fractions import Fraction

from wharf.cli import exact_text


def test_exact_text() -> None:
    assert exact_text(Fraction(649722067, 100)) == "6497220.67"
    assert exact_text(Fraction(-1, 8)) == "-0.125"
    assert exact_text(Fraction(5)) == "5"
    assert exact_text(Fraction(1, 3)) == "1/3"
    assert Fraction(exact_text(Fraction(22, 7))) == Fraction(22, 7)


def test_errors_name_the_flag_the_user_typed() -> None:
    from datawharf.errors import FailedPrecondition, InvalidArgument, WharfError
    from wharf.cli import cli_message

    assert cli_message(FailedPrecondition("min_parties 4 cannot be met: only 3 holder(s)", argument="min_parties")) \
        == "--min-parties 4 cannot be met: only 3 holder(s)"
    assert cli_message(InvalidArgument("a histogram needs bins, e.g. bins=0,18", argument="bins")) \
        == "a histogram needs --bins, e.g. --bins=0,18"
    # the argument's name inside a longer word is left alone; a message without it gets the flag in front
    assert cli_message(InvalidArgument("bad key_columns_x", argument="key_column"), {"key_column": "--column"}) \
        == "--column: bad key_columns_x"
    assert cli_message(WharfError("no argument at fault")) == "no argument at fault"
