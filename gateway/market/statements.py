"""Statements: a holder's or a buyer's charge lines for a month, with totals that add up.

A statement is built from the ``charges`` rows alone, so the gateway (over
RPC) and an operator reading a data directory offline print the same one.
An unknown name or a month without jobs gives an empty statement.
"""

from __future__ import annotations

import calendar
import re
import sqlite3
from datetime import datetime, timezone
from decimal import Decimal
from typing import Iterable, Iterator

from datawharf.errors import InvalidArgument
from datawharf.v1 import market_pb2

_MONTH = re.compile(r"(\d{4})-(\d{2})")
CSV_HEADER = "job_id,date,dataset,buyer,holder,kind,amount,currency,ledger_seq"


def month_range(month: str) -> tuple[float, float]:
    """[start, end) of ``month`` (YYYY-MM, UTC) in unix seconds; all time when empty."""
    if not month:
        return 0.0, float("inf")
    m = _MONTH.fullmatch(month)
    if m is None or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1970:
        raise InvalidArgument(f"month {month!r} is not YYYY-MM, e.g. 2026-12", argument="month")
    year, mon = int(m.group(1)), int(m.group(2))
    start = datetime(year, mon, 1, tzinfo=timezone.utc)
    days = calendar.monthrange(year, mon)[1]
    return start.timestamp(), start.timestamp() + days * 86400


def build(rows: list[sqlite3.Row], *, party: str = "", buyer: str = "", month: str = "") -> market_pb2.Statement:
    """The statement of ``party`` (its holder lines) or ``buyer`` (its holder lines and fees)."""
    out = market_pb2.Statement(party=party, buyer=buyer, month=month)
    totals: dict[str, Decimal] = {}
    for r in rows:
        line = market_pb2.ChargeLine(job_id=r["job_id"], at=r["at"], dataset=r["dataset"], buyer=r["buyer"],
                                     holder=r["holder"], kind=r["kind"], amount=r["amount"], currency=r["currency"],
                                     ledger_seq=r["ledger_seq"])
        if r["kind"] == "fee":
            if party:
                continue  # the fee is the buyer's, on top of what holders are paid
            out.fees.append(line)
        else:
            out.lines.append(line)
        totals[r["currency"]] = totals.get(r["currency"], Decimal(0)) + Decimal(r["amount"])
    out.totals.extend(market_pb2.Amount(currency=c, amount=str(a)) for c, a in sorted(totals.items()))
    return out


PART_LINES = 2000  # ~100 bytes a line: a part stays far below the message limit


def parts(statement: market_pb2.Statement, size: int = PART_LINES) -> Iterator[market_pb2.Statement]:
    """``statement`` in parts of at most ``size`` lines and fees; the totals ride on the last."""
    items = [(False, x) for x in statement.lines] + [(True, x) for x in statement.fees]
    for start in range(0, max(len(items), 1), size):
        part = market_pb2.Statement(party=statement.party, buyer=statement.buyer, month=statement.month)
        for is_fee, x in items[start:start + size]:
            (part.fees if is_fee else part.lines).append(x)
        if start + size >= len(items):
            part.totals.extend(statement.totals)
        yield part


def join(pieces: Iterable[market_pb2.Statement]) -> market_pb2.Statement:
    """The parts of a statement, whole again."""
    out = market_pb2.Statement()
    for piece in pieces:
        out.party, out.buyer, out.month = piece.party, piece.buyer, piece.month
        out.lines.extend(piece.lines)
        out.fees.extend(piece.fees)
        out.totals.extend(piece.totals)
    return out


def check_request(party: str, buyer: str) -> None:
    if bool(party) == bool(buyer):
        raise InvalidArgument("a statement is a holder's (--party) or a buyer's (--buyer): name exactly one")


def date_of(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d")


def to_csv(statement: market_pb2.Statement) -> str:
    """The statement as CSV: one row per line and fee, then a total row per currency."""
    rows = [CSV_HEADER]
    for x in [*statement.lines, *statement.fees]:
        rows.append(",".join([x.job_id, date_of(x.at), x.dataset, x.buyer, x.holder, x.kind, x.amount, x.currency,
                              str(x.ledger_seq)]))
    rows += [",".join(["TOTAL", "", "", "", "", "total", t.amount, t.currency, ""]) for t in statement.totals]
    return "\n".join(rows) + "\n"


__all__ = ["CSV_HEADER", "PART_LINES", "build", "check_request", "date_of", "join", "month_range", "parts", "to_csv"]
