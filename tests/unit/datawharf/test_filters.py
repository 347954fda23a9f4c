from decimal import Decimal

import pytest

from datawharf.filters import Condition, FilterSyntaxError, Op, parse, to_text


def test_conditions_joined_by_and() -> None:
    got = parse("age >= 65 AND department == 'cardiology' and cost < -3.5 and x != \"it's\"")
    assert got == [
        Condition("age", Op.GE, Decimal("65")),
        Condition("department", Op.EQ, "cardiology"),
        Condition("cost", Op.LT, Decimal("-3.5")),
        Condition("x", Op.NE, "it's"),
    ]


def test_single_equals_is_equality_and_empty_is_no_filter() -> None:
    assert parse("a = 1") == [Condition("a", Op.EQ, Decimal(1))]
    assert parse("   ") == []


def test_round_trip_through_text() -> None:
    conds = parse("age > 1 and dept == 'a b'")
    assert parse(to_text(conds)) == conds


def test_injection_stays_a_literal() -> None:
    (cond,) = parse("name == '; DROP TABLE visits; --'")
    assert cond.literal == "; DROP TABLE visits; --"


@pytest.mark.parametrize(
    "text, where",
    [
        ("age >> 65", "character 6"),
        ("age >= 65 or x = 1", "expected 'and' at character 11"),
        ("age >= 65 and", "ends with 'and'"),
        (">= 3", "character 1"),
        ("a = b", "quoted string at character 5"),
        ("a = 'unterminated", "character 5"),
        ("a ~ 1", "character 3"),
    ],
)
def test_malformed_filters_say_where(text: str, where: str) -> None:
    with pytest.raises(FilterSyntaxError, match=where):
        parse(text)


def test_too_many_conditions() -> None:
    with pytest.raises(FilterSyntaxError, match="at most 16"):
        parse(" and ".join(["a = 1"] * 17))
