"""Result comparison: whether two engines returned the same rows, and the baseline results kept for it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable


def _inexact(dtype: pa.DataType) -> bool:
    return pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)


def _sorted_rows(table: pa.Table, inexact: Sequence[bool]) -> list[tuple[object, ...]]:
    """Rows sorted by their exact columns, then by their inexact ones rounded (ties only)."""
    columns = [column.to_pylist() for column in table.columns]

    def key(row: tuple[object, ...]) -> tuple[str, ...]:
        exact = [repr(v) for v, loose in zip(row, inexact, strict=True) if not loose]
        rough = [
            repr(round(float(v), 2) if isinstance(v, float | Decimal) else v)
            for v, x in zip(row, inexact, strict=True)
            if x
        ]
        return (*exact, *rough)

    return sorted(zip(*columns, strict=True), key=key)


def _same_value(expected: object, actual: object, loose: bool) -> bool:
    if not loose or expected is None or actual is None:
        return expected == actual
    return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-6)  # type: ignore[arg-type]


def results_match(expected: pa.Table, actual: pa.Table) -> bool:
    """Whether two results hold the same rows (a multiset; names and types of columns ignored).

    Decimal and float columns (in either table) compare within 1e-6 absolute or 1e-9 relative.

    >>> results_match(pa.table({"a": [2, 1], "x": [0.5, 0.25]}), pa.table({"b": [1, 2], "y": [0.25, 0.5]}))
    True
    >>> results_match(pa.table({"a": [1]}), pa.table({"a": [2]}))
    False
    """
    if expected.num_columns != actual.num_columns or expected.num_rows != actual.num_rows:
        return False
    inexact = [
        _inexact(a.type) or _inexact(b.type) for a, b in zip(expected.schema, actual.schema, strict=True)
    ]
    pairs = zip(_sorted_rows(expected, inexact), _sorted_rows(actual, inexact), strict=True)
    return all(
        _same_value(e, a, loose)
        for want, got in pairs
        for e, a, loose in zip(want, got, inexact, strict=True)
    )


# ------------------------------------------------------------------------------------ kept results


def result_path(folder: str | Path, query: str) -> Path:
    """Where round 0 keeps the baseline's result of ``query`` (Arrow IPC) for the product's check."""
    return Path(folder) / f"{query}.arrow"


def keep_result(table: pa.Table, path: Path) -> None:
    """Write ``table`` as an Arrow IPC file (read back by :func:`read_kept`)."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def read_kept(path: Path) -> pa.Table:
    """A result kept by :func:`keep_result`."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def output_matches(uri: str, expected: Path) -> bool | None:
    """Whether a plan's Delta output holds the rows kept at ``expected`` (``None``: nothing kept).

    The output's live files are read with pyarrow's Parquet reader (not deltalake's pyarrow path).
    """
    if not expected.is_file():
        return None
    files, kept = DeltaTable(uri).file_uris(), read_kept(expected)
    return results_match(kept, pq.read_table(files)) if files else kept.num_rows == 0
