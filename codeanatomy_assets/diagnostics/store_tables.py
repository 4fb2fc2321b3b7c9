"""The diagnostics store's Delta tables: their properties, their data files, and their opening.

Each table is created append-only (``delta.appendOnly``) with a checkpoint every
:data:`CHECKPOINT_INTERVAL` commits and exact min/max statistics of its :data:`STATS_COLUMNS` in the log.
Data files are plain Parquet written here with their statistics; a local table is opened once per
process (:func:`open_table`) and brought up to date incrementally.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable, Schema
from deltalake.exceptions import TableNotFoundError
from deltalake.fs import DeltaStorageHandler
from deltalake.transaction import AddAction
from pyarrow.fs import FileSystem, LocalFileSystem, PyFileSystem

from codeanatomy_assets.diagnostics.schemas import (
    DATAFUSION_PLAN_ARTIFACTS_TABLE,
    DATAFUSION_RUNS_TABLE,
    DIAGNOSTICS_EVENTS_TABLE,
    TABLE_SCHEMAS,
)
from codeanatomy_assets.errors import DiagnosticsError

CHECKPOINT_INTERVAL: Final = 20
MAX_COMMIT_RETRIES: Final = 100

STATS_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        DIAGNOSTICS_EVENTS_TABLE: ("run_id", "event_time_unix_ms"),
        DATAFUSION_RUNS_TABLE: ("run_id", "start_time_unix_ms"),
        DATAFUSION_PLAN_ARTIFACTS_TABLE: ("run_id", "event_time_unix_ms"),
    }
)
"""The columns with min/max statistics in the Delta log (also what compaction keeps statistics for)."""

TABLE_ORDER: Final = (DIAGNOSTICS_EVENTS_TABLE, DATAFUSION_RUNS_TABLE, DATAFUSION_PLAN_ARTIFACTS_TABLE)
"""The tables in the order a flush writes them."""

_OPENED: Final[dict[str, tuple[tuple[int, int, int], DeltaTable]]] = {}
"""The local store tables this process opened, by path, with the identity of their first commit file
(shared by every store object; a table deleted and created again at the same path is opened afresh)."""


def table_configuration(table: str) -> dict[str, str]:
    """The Delta table properties the store creates ``table`` with."""
    return {
        "delta.appendOnly": "true",
        "delta.checkpointInterval": str(CHECKPOINT_INTERVAL),
        "delta.dataSkippingStatsColumns": ",".join(STATS_COLUMNS[table]),
    }


def is_local(uri: str) -> bool:
    """Whether ``uri`` is a local path (or a ``file://`` URI) rather than an object store."""
    return "://" not in uri or uri.startswith("file://")


# --- opening -----------------------------------------------------------------------------------------


def open_table(
    uri: str,
    table: str,
    storage_options: Mapping[str, str] | None,
    *,
    create: bool,
    known: DeltaTable | None = None,
) -> DeltaTable | None:
    """``table`` at ``uri`` at its latest version; created when missing and ``create``; ``None`` when missing.

    ``known`` (the caller's handle), else the handle this process opened (:data:`_OPENED`), is brought up
    to date with ``update_incremental``: each step of a build has its own store, and opening replays the
    log from its checkpoint.
    """
    identity = _identity(uri)
    cached = _brought_up_to_date(uri, known, identity)
    if cached is not None:
        return cached
    delta = _open_or_create(uri, table, storage_options, create=create)
    if delta is None:
        return None
    _add_missing_columns(table, delta)
    if identity is not None:
        _OPENED[uri] = (identity, delta)
    return delta


def _brought_up_to_date(
    uri: str, known: DeltaTable | None, identity: tuple[int, int, int] | None
) -> DeltaTable | None:
    """``known``, else the handle this process opened on the same table, at its latest version; ``None``
    when there is none or the folder was replaced or removed under it (it is then forgotten)."""
    shared = _OPENED.get(uri)
    cached = known or (shared[1] if shared and shared[0] == identity else None)
    if cached is None:
        return None
    try:
        cached.update_incremental()
    except Exception:  # noqa: BLE001 - the folder was replaced or removed under us: to be opened afresh
        _OPENED.pop(uri, None)
        return None
    return cached


def _open_or_create(
    uri: str, table: str, storage_options: Mapping[str, str] | None, *, create: bool
) -> DeltaTable | None:
    options = dict(storage_options) if storage_options else None
    try:
        return DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        if not create:
            return None
    # mode="ignore": when several processes race to create the table, every one ends up with it; one that
    # loses the race at the commit itself uses the winner's table.
    try:
        DeltaTable.create(
            uri,
            TABLE_SCHEMAS[table],
            mode="ignore",
            name=table,
            configuration=table_configuration(table),
            storage_options=options,
        )
    except Exception:
        if not DeltaTable.is_deltatable(uri, storage_options=options):
            raise
    return DeltaTable(uri, storage_options=options)


def _identity(uri: str) -> tuple[int, int, int] | None:
    """Device, inode and mtime of a local table's first commit file; ``None`` for object stores and when
    it is missing (not created yet, or removed by log retention): such tables are not shared."""
    if not is_local(uri):
        return None
    try:
        first = os.stat(os.path.join(uri.removeprefix("file://"), "_delta_log", f"{0:020d}.json"))
    except OSError:
        return None
    return first.st_dev, first.st_ino, first.st_mtime_ns


def _add_missing_columns(table: str, delta: DeltaTable) -> None:
    """Append columns that a newer schema constant added (the append-only rule makes this safe)."""
    present = {field.name for field in delta.schema().fields}
    missing = [field.with_nullable(True) for field in TABLE_SCHEMAS[table] if field.name not in present]
    if missing:
        delta.alter.add_columns(Schema.from_arrow(pa.schema(missing)).fields)


# --- data files --------------------------------------------------------------------------------------


def table_filesystem(uri: str, storage_options: Mapping[str, str] | None) -> tuple[FileSystem, str]:
    """A filesystem and the table's base path in it (local: native; object stores: via deltalake)."""
    if is_local(uri):
        return LocalFileSystem(), uri
    # deltalake's handler implements pyarrow's FileSystemHandler interface without subclassing it.
    handler = DeltaStorageHandler(uri, dict(storage_options) if storage_options else None)
    return PyFileSystem(handler), ""  # pyright: ignore[reportArgumentType]


def write_data_file(table: str, filesystem: FileSystem, base: str, data: pa.Table) -> AddAction:
    """Write ``data`` as a new Parquet file of ``table``; returns its add action, statistics included."""
    name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
    path = f"{base}/{name}" if base else name
    pq.write_table(data, path, filesystem=filesystem, compression="snappy")
    return AddAction(
        path=name,
        size=filesystem.get_file_info(path).size,
        partition_values={},
        modification_time=time.time_ns() // 1_000_000,
        data_change=True,
        stats=_file_stats(table, data),
    )


def _file_stats(table: str, data: pa.Table) -> str:
    """Delta ``add.stats`` JSON with exact min/max/null counts of the table's statistics columns."""
    mins: dict[str, object] = {}
    maxs: dict[str, object] = {}
    nulls: dict[str, int] = {}
    for column in STATS_COLUMNS[table]:
        values = data.column(column)
        nulls[column] = values.null_count
        extremes = pc.min_max(values)
        low, high = extremes["min"].as_py(), extremes["max"].as_py()
        if low is not None:
            mins[column], maxs[column] = low, high
    return json.dumps({"numRecords": data.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls})


def read_data_files(
    filesystem: FileSystem, base: str, files: Iterable[str], schema: pa.Schema
) -> list[pa.Table]:
    """The data files (paths relative to the table), each with exactly the columns of ``schema``."""
    return [
        _conform(pq.read_table(f"{base}/{path}" if base else path, filesystem=filesystem), schema)
        for path in files
    ]


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """``data`` with exactly the columns of ``schema``: missing ones (older files) read as null."""
    columns = [
        data.column(field.name).cast(field.type)
        if field.name in data.column_names
        else pa.nulls(data.num_rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, schema=pa.schema([f.with_nullable(True) for f in schema]))


def relative_paths(delta: DeltaTable, uris: Iterable[str]) -> list[str]:
    """The file URIs deltalake lists, as paths relative to the table (percent-decoded)."""
    prefixes = (
        delta.table_uri.rstrip("/") + "/",
        delta.table_uri.removeprefix("file://").rstrip("/") + "/",
    )
    return [unquote(_strip_prefix(uri, prefixes)) for uri in uris]


def _strip_prefix(uri: str, prefixes: Iterable[str]) -> str:
    for prefix in prefixes:
        if uri.startswith(prefix):
            return uri[len(prefix) :]
    raise DiagnosticsError(f"file {uri} is not under its table ({', '.join(prefixes)})")


# --- file statistics ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileStats:
    """One active data file of a table and the min/max statistics of its statistics columns."""

    path: str
    """Relative to the table."""
    low: Mapping[str, Any]
    high: Mapping[str, Any]
    """By column; ``None`` where the log has no statistic."""


def files_with_stats(delta: DeltaTable, table: str) -> list[FileStats]:
    """Every active file of ``table`` with its statistics, read from the Delta log (no data file opened)."""
    columns = STATS_COLUMNS[table]
    return [
        FileStats(
            path=unquote(row["path"]),
            low={column: row.get(f"min.{column}") for column in columns},
            high={column: row.get(f"max.{column}") for column in columns},
        )
        for row in pa.table(delta.get_add_actions(flatten=True)).to_pylist()
    ]
