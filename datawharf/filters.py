"""Row filters: a few ``column op literal`` conditions joined by ``and``.

Buyers write them as text (``--where "age >= 65 and department == 'cardiology'"``);
the text is parsed here into structured conditions, sent as such, and each
holder evaluates them itself. No SQL is ever built from the text.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation


class Op(str, enum.Enum):
    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


@dataclass(frozen=True)
class Condition:
    column: str
    op: Op
    literal: str | Decimal

    def __str__(self) -> str:
        lit = repr(self.literal) if isinstance(self.literal, str) else str(self.literal)
        return f"{self.column} {self.op.value} {lit}"


class FilterSyntaxError(ValueError):
    """The filter text does not parse; the message says where."""


class FilterTypeError(ValueError):
    """A condition compares a column with the wrong kind of value."""


def check_types(cond: Condition, *, text: bool, vector: bool = False) -> None:
    """The one statement of which comparisons a column admits.

    The gateway applies it to the columns holders list, each holder to the
    columns it actually loaded, so both refuse the same conditions with the
    same words."""
    if vector:
        raise FilterTypeError(f"filter: {cond.column!r} is a vector column; filter on scalar columns")
    if text and not isinstance(cond.literal, str):
        raise FilterTypeError(f"filter: {cond.column!r} holds text; compare it with a quoted string")
    if not text and isinstance(cond.literal, str):
        raise FilterTypeError(f"filter: {cond.column!r} is numeric; compare it with a number")
    if text and cond.op not in (Op.EQ, Op.NE):
        raise FilterTypeError(f"filter: text column {cond.column!r} supports only == and !=")


def check_role(cond: Condition, allowed: tuple[Op, ...] | list[Op]) -> None:
    """The holder's column role: which operators, if any, a filter may use on the column."""
    if not allowed:
        raise FilterTypeError(f"filter: the holder does not allow filtering on {cond.column!r}")
    if cond.op not in allowed:
        ops = " ".join(o.value for o in allowed)
        raise FilterTypeError(f"filter: {cond.column!r} may be filtered only with {ops}, not {cond.op.value}")


MAX_CONDITIONS = 16
# A literal costs its evaluator in proportion to its digits and exponent
# (1e300000 is 8 bytes and seconds of CPU): bound both wherever one is read.
MAX_LITERAL_DIGITS = 30
MAX_LITERAL_EXPONENT = 30
MAX_TEXT_LITERAL = 256


def check_literal(column: str, literal: str | Decimal) -> None:
    """Raise FilterSyntaxError unless the literal is small enough to compare cheaply."""
    if isinstance(literal, str):
        if len(literal) > MAX_TEXT_LITERAL:
            raise FilterSyntaxError(f"filter on {column!r}: text literals are at most {MAX_TEXT_LITERAL} characters")
        return
    if not literal.is_finite():
        raise FilterSyntaxError(f"filter on {column!r}: the number must be finite")
    digits = len(literal.as_tuple().digits)
    if digits > MAX_LITERAL_DIGITS or abs(literal.adjusted()) > MAX_LITERAL_EXPONENT:
        raise FilterSyntaxError(
            f"filter on {column!r}: numbers are limited to {MAX_LITERAL_DIGITS} digits and magnitudes "
            f"10^-{MAX_LITERAL_EXPONENT} to 10^{MAX_LITERAL_EXPONENT}")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(
    rf"""\s*(?:
        (?P<and>and\b) |
        (?P<ident>{_IDENT}) |
        (?P<op>==|!=|<=|>=|=|<|>) |
        (?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)) |
        (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    )""",
    re.VERBOSE | re.IGNORECASE,
)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            start = len(text) - len(text[pos:].lstrip())
            raise FilterSyntaxError(
                f"unexpected {text[start:start + 10]!r} at character {start + 1} of the filter"
            )
        kind = m.lastgroup or ""
        start = m.start(kind)
        out.append((kind, m.group(kind), start))
        pos = m.end()
    return out


def parse(text: str) -> list[Condition]:
    """Parse filter text; raise FilterSyntaxError naming the offending place."""
    toks = _tokens(text)
    if not toks:
        return []
    conditions: list[Condition] = []
    i = 0
    while True:
        if i + 3 > len(toks):
            where = toks[i][2] + 1 if i < len(toks) else len(text)
            raise FilterSyntaxError(
                f"incomplete condition at character {where}: expected 'column op value'"
            )
        (k1, col, p1), (k2, op, p2), (k3, lit, p3) = toks[i : i + 3]
        if k1 != "ident" or col.lower() == "and":
            raise FilterSyntaxError(f"expected a column name at character {p1 + 1}, got {col!r}")
        if k2 != "op":
            raise FilterSyntaxError(
                f"expected one of == != < <= > >= at character {p2 + 1}, got {op!r}"
            )
        literal: str | Decimal
        if k3 == "number":
            try:
                literal = Decimal(lit)
            except InvalidOperation:  # pragma: no cover - the regex admits only numbers
                raise FilterSyntaxError(f"bad number {lit!r} at character {p3 + 1}") from None
        elif k3 == "string":
            literal = re.sub(r"\\(.)", r"\1", lit[1:-1])
        else:
            raise FilterSyntaxError(
                f"expected a number or a quoted string at character {p3 + 1}, got {lit!r}"
            )
        check_literal(col, literal)
        conditions.append(Condition(col, Op("==" if op == "=" else op), literal))
        i += 3
        if i == len(toks):
            break
        kind, word, pos = toks[i]
        if kind != "and":
            raise FilterSyntaxError(f"expected 'and' at character {pos + 1}, got {word!r}")
        i += 1
        if i == len(toks):
            raise FilterSyntaxError("the filter ends with 'and'; add a condition after it")
    if len(conditions) > MAX_CONDITIONS:
        raise FilterSyntaxError(f"at most {MAX_CONDITIONS} conditions, got {len(conditions)}")
    return conditions


def to_text(conditions: list[Condition]) -> str:
    return " and ".join(str(c) for c in conditions)
