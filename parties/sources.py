"""Reading a holder's dataset from CSV or Parquet with its declared types."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from parties.config import DatasetConfig
from datawharf.errors import WharfError
from datawharf.model import ColumnKind, ColumnSpec, Listing, PrivacyTerms, round_rows

log = logging.getLogger("datawharf.party")
_ARROW = {"int": pa.int64(), "decimal": pa.float64(), "string": pa.string(), "vector": pa.string()}
ID_BATCH_ROWS = 1 << 16  # rows read at a time where a file is streamed


class SourceError(WharfError):
    """The dataset's file does not match its declared columns.

    Its message may quote the file's contents (a cell that does not parse),
    so it is for the holder's own operator: ``public_reason`` is what a task
    failure may tell the gateway and the buyer.
    """


def public_reason(dataset: str, exc: SourceError) -> str:
    """Log the detail here; return a reason that quotes nothing from the file."""
    log.warning("dataset %r cannot be read: %s", dataset, exc.message)
    return f"dataset {dataset!r} cannot be read at the holder right now; its operator's log has the detail"


@dataclass
class Table:
    rows: int
    columns: dict[str, np.ndarray]


def _read(config: DatasetConfig) -> pa.Table:
    names = [c.name for c in config.columns]
    types = {c.name: _ARROW[c.type] for c in config.columns}
    try:
        if config.source.suffix.lower() == ".parquet":
            table = pq.read_table(config.source, columns=names)
            for c in config.columns:
                if c.type == "vector":  # Parquet holds real lists; keep them
                    types[c.name] = pa.list_(pa.float64())
            return table.cast(pa.schema([(n, types[n]) for n in names]))
        return pacsv.read_csv(
            config.source,
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=names),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as exc:
        raise SourceError(f"dataset {config.name!r} ({config.source}): {exc}") from None


def load(config: DatasetConfig) -> Table:
    return _columns(config, _read(config))


def count_rows(config: DatasetConfig, batch_rows: int = ID_BATCH_ROWS) -> int:
    """The rows of a dataset's file, checked as ``load`` checks them but read in batches and kept nowhere:
    what a listing needs, without the table in memory."""
    names = [c.name for c in config.columns]
    types = {c.name: _ARROW[c.type] for c in config.columns}
    rows = 0
    try:
        if config.source.suffix.lower() == ".parquet":
            for c in config.columns:
                if c.type == "vector":
                    types[c.name] = pa.list_(pa.float64())
            schema = pa.schema([(n, types[n]) for n in names])
            batches: Iterator[pa.RecordBatch] = pq.ParquetFile(config.source).iter_batches(
                batch_size=batch_rows, columns=names)
            for batch in batches:
                rows += _columns(config, pa.Table.from_batches([batch]).cast(schema)).rows
            return rows
        reader = pacsv.open_csv(config.source, read_options=pacsv.ReadOptions(block_size=1 << 22),
                                convert_options=pacsv.ConvertOptions(column_types=types, include_columns=names))
        for batch in reader:
            rows += _columns(config, pa.Table.from_batches([batch])).rows
        return rows
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as exc:
        raise SourceError(f"dataset {config.name!r} ({config.source}): {exc}") from None


def _columns(config: DatasetConfig, table: pa.Table) -> Table:
    missing = [c.name for c in config.columns if c.name not in table.column_names]
    if missing:
        raise SourceError(f"dataset {config.name!r}: {config.source} has no column(s) {', '.join(missing)}")
    cols: dict[str, np.ndarray] = {}
    for c in config.columns:
        arr = table.column(c.name)
        if arr.null_count:
            raise SourceError(
                f"dataset {config.name!r}: column {c.name!r} has {arr.null_count} empty value(s); fill or drop them"
            )
        if c.type == "string":
            cols[c.name] = np.asarray(pc.utf8_trim_whitespace(arr).to_pylist(), dtype=object)
        elif c.type == "vector":
            cols[c.name] = _vectors(config.name, c.name, arr, c.length or 1)
        else:
            cols[c.name] = arr.to_numpy()
    return Table(table.num_rows, cols)


def id_batches(config: DatasetConfig, column: str, batch_rows: int = ID_BATCH_ROWS) -> Iterator[list[str]]:
    """One column's values as text, ``batch_rows`` at a time, read from the file in batches: as ``load``
    gives them (strings trimmed, numbers as ``str`` of their value) without the whole table in memory."""
    spec = next((c for c in config.columns if c.name == column), None)
    if spec is None:
        raise SourceError(f"dataset {config.name!r} declares no column {column!r}")
    kind = _ARROW[spec.type]
    try:
        if config.source.suffix.lower() == ".parquet":
            batches: Iterator[pa.RecordBatch] = pq.ParquetFile(config.source).iter_batches(
                batch_size=batch_rows, columns=[column])
        else:
            batches = iter(pacsv.open_csv(
                config.source, read_options=pacsv.ReadOptions(block_size=1 << 22),
                convert_options=pacsv.ConvertOptions(column_types={column: kind}, include_columns=[column])))
        for batch in batches:
            arr = batch.column(0).cast(kind)
            if arr.null_count:
                raise SourceError(f"dataset {config.name!r}: column {column!r} has {arr.null_count} empty "
                                  "value(s); fill or drop them")
            if spec.type == "string":
                arr = pc.utf8_trim_whitespace(arr)
            for start in range(0, len(arr), batch_rows):
                yield [str(v) for v in arr.slice(start, batch_rows).to_pylist()]
    except (pa.ArrowInvalid, pa.ArrowTypeError, KeyError) as exc:
        raise SourceError(f"dataset {config.name!r} ({config.source}): {exc}") from None


def _vectors(dataset: str, column: str, arr: pa.ChunkedArray, length: int) -> np.ndarray:
    """A rows × length float matrix from a list column or "a;b;c" text cells."""
    if pa.types.is_string(arr.type):
        arr = pc.split_pattern_regex(pc.utf8_trim_whitespace(arr), r"\s*;\s*")
        try:
            arr = arr.cast(pa.list_(pa.float64()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SourceError(f"dataset {dataset!r}: vector column {column!r} holds a non-number: {exc}") from None
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(lengths != length)
    if bad.size:
        raise SourceError(
            f"dataset {dataset!r}: row {int(bad[0]) + 1} of vector column {column!r} has "
            f"{int(lengths[bad[0]])} values, the config says {length}"
        )
    flat = pc.list_flatten(arr).to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float64).reshape(-1, length)


def listing(config: DatasetConfig, rows: int) -> Listing:
    return Listing(
        name=config.name,
        columns=tuple(
            ColumnSpec(
                c.name,
                ColumnKind(c.type),
                c.decimals if c.type in ("decimal", "vector") else 0,
                c.length or 1,
                tuple(c.categories or ()),
                c.join_key,
                c.psi_value,
                tuple(c.filter),
                c.group,
                c.aggregate,
                c.identifier,
                c.bounds,
            )
            for c in config.columns
        ),
        approx_rows=round_rows(rows),
        description=config.description,
        min_parties=config.policy.min_parties,
        privacy=privacy_terms(config),
    )


def privacy_terms(config: DatasetConfig) -> PrivacyTerms:
    pol = config.policy
    if not pol.dp.enabled:
        return PrivacyTerms(dp=False, list_suppressed=pol.list_suppressed)
    d = pol.dp
    return PrivacyTerms(True, d.budget, d.period_days, d.max_per_job, d.default_per_job, d.noise,
                        pol.list_suppressed)


class CachedSource:
    """Reloads the file when it changes, so a holder can update data in place."""

    def __init__(self, config: DatasetConfig) -> None:
        self.config = config
        self._stamp: tuple[int, int] | None = None
        self._table: Table | None = None
        self._rows: tuple[tuple[int, int], int] | None = None

    def table(self) -> Table:
        st = os.stat(self.config.source)
        stamp = (st.st_mtime_ns, st.st_size)
        if self._table is None or stamp != self._stamp:
            self._table = load(self.config)
            self._stamp = stamp
        return self._table

    def rows(self) -> int:
        """The file's rows, checked in batches (``count_rows``); remembered until the file changes."""
        st = os.stat(self.config.source)
        stamp = (st.st_mtime_ns, st.st_size)
        if self._rows is None or stamp != self._rows[0]:
            self._rows = (stamp, count_rows(self.config))
        return self._rows[1]

    def id_batches(self, column: str) -> Iterator[list[str]]:
        """The column's values in batches, straight from the file (``id_batches``)."""
        return id_batches(self.config, column)

    @property
    def path(self) -> Path:
        return self.config.source
