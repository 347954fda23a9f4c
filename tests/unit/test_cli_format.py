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
        == "a histogram needs bins, e.g. --bins=0,18"
    assert cli_message(InvalidArgument("where: bad character 6", argument="where")) == "--where: bad character 6"
    # plain words stay words; a name inside a longer one is left alone
    assert cli_message(InvalidArgument("column 'x' is not in dataset 'v'", argument="column")) \
        == "column 'x' is not in dataset 'v'"
    assert cli_message(InvalidArgument("bad key_columns_x or key_column", argument="key_column"),
                       {"key_column": "--column"}) == "bad key_columns_x or --column"
    assert cli_message(WharfError("no argument at fault")) == "no argument at fault"
