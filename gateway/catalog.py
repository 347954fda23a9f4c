"""The catalog: what connected holders list, merged by dataset name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from datawharf.model import ColumnSpec, Listing


@dataclass(frozen=True)
class CatalogEntry:
    dataset: str
    holders: tuple[str, ...]
    holders_online: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    approx_rows: int
    listings: dict[str, Listing]  # per holder, for validation; not sent as such

    def contributors(self, parties: Iterable[str]) -> int:
        """Holders whose figures the answers of ``parties`` sum: a link to another exchange counts
        every holder behind it, so a packed slot must leave headroom for all of them."""
        return sum(self.listings[p].holders if p in self.listings else 1 for p in set(parties))


def merge(listings_by_party: dict[str, list[Listing]], online: set[str]) -> dict[str, CatalogEntry]:
    """Columns are those every holder lists with the same type and dimension;
    decimals are the most any holder uses, so every holder can encode at that
    precision; categories only where all holders declare the same ones."""
    by_name: dict[str, dict[str, Listing]] = {}
    for party, listings in listings_by_party.items():
        for listing in listings:
            by_name.setdefault(listing.name, {})[party] = listing
    out: dict[str, CatalogEntry] = {}
    for name, holders in sorted(by_name.items()):
        first = next(iter(holders.values()))
        columns = []
        for col in first.columns:
            others = [h.column(col.name) for h in holders.values()]
            if all(o is not None and o.kind == col.kind and o.dimension == col.dimension for o in others):
                places = max(o.decimals for o in others if o is not None)
                # Grouping needs every holder to declare the same categories.
                same = all(o is not None and o.categories == col.categories for o in others)
                columns.append(ColumnSpec(
                    col.name, col.kind, places, col.dimension, col.categories if same else (),
                    # PSI runs against one holder: a column is a join key or value if any holder says so.
                    any(o.join_key for o in others if o is not None),
                    any(o.psi_value for o in others if o is not None),
                    # An aggregate needs every holder: a role holds only where all grant it.
                    tuple(op for op in col.filter_ops if all(o is not None and op in o.filter_ops for o in others)),
                    same and all(o is not None and o.group for o in others),
                    all(o is not None and o.aggregate for o in others),
                    any(o.identifier for o in others if o is not None),
                    col.bounds if all(o is not None and o.bounds == col.bounds for o in others) else None,
                ))
        out[name] = CatalogEntry(
            dataset=name,
            holders=tuple(sorted(holders)),
            holders_online=tuple(sorted(p for p in holders if p in online)),
            columns=tuple(columns),
            approx_rows=sum(h.approx_rows for h in holders.values()),
            listings=holders,
        )
    return out
