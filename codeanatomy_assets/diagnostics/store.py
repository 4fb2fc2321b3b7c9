"""The durable diagnostics store: append-only Delta tables under ``<home>/lake/_diagnostics``.

:class:`DeltaDiagnosticsStore` is a :class:`~codeanatomy_assets.diagnostics.sinks.DiagnosticsSink`:

- every row goes to ``diagnostics_events_v1``;
- ``datafusion_run_started_v1`` / ``datafusion_run_finished_v1`` rows are also written, typed, to
  ``datafusion_runs_v1`` (fields from the payload, see :mod:`~codeanatomy_assets.diagnostics.runs`);
- ``datafusion_plan_artifacts_v1`` rows are also written, typed, to ``datafusion_plan_artifacts_v1``.

Rows are validated when recorded (``ValueError`` for a row that is not a valid ``DiagnosticEvent`` row or
does not fit the table schema) and buffered; :meth:`~DeltaDiagnosticsStore.flush` writes them, one Delta
commit per table touched. A commit is atomic: a failed flush (:class:`DiagnosticsError` naming the table
and its path) leaves the table as it was, and the rows stay buffered for the next flush.

**Layout for cheap reads of one run.** Each flush writes one Parquet file per run per table and records
exact min/max statistics of ``run_id`` (and of the table's time column) in the Delta log, so reading one
run asks deltalake for the files whose ``run_id`` range can match (``DeltaTable.file_uris`` with a
pruning predicate) and opens only those. The tables are written and read with plain Parquet because
the store owns their protocol: append-only (``delta.appendOnly``), no deletion vectors, no column
mapping. ``DeltaTable.to_pyarrow_table()`` is deliberately not used (it aborts the process at
exit). A checkpoint every :data:`CHECKPOINT_INTERVAL` commits (``delta.checkpointInterval``, written
by deltalake's post-commit hook) keeps log replay bounded however many runs accumulate.

Concurrent writers, in threads or processes, are safe: appends never conflict, and deltalake retries a
commit that lost the race for a version (up to :data:`MAX_COMMIT_RETRIES` times).

>>> import tempfile
>>> from codeanatomy_assets.diagnostics.runs import tracked_run
>>> with DeltaDiagnosticsStore(tempfile.mkdtemp()) as store, tracked_run(label="doc", sink=store) as run:
...     pass
>>> [r["status"] for r in store.read_runs(run.run_id)]
['completed']
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema
from deltalake.exceptions import TableNotFoundError
from deltalake.fs import DeltaStorageHandler
from deltalake.transaction import AddAction, RemoveAction
from pyarrow.fs import FileSystem, LocalFileSystem, PyFileSystem

from codeanatomy_assets.diagnostics import attributes as attr
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.runs import (
    ERROR_MESSAGE_KEY,
    RUN_FINISHED_EVENT,
    RUN_STARTED_EVENT,
    RunStatus,
)
from codeanatomy_assets.diagnostics.schemas import (
    DATAFUSION_PLAN_ARTIFACTS_TABLE,
    DATAFUSION_RUNS_TABLE,
    DIAGNOSTICS_EVENTS_TABLE,
    PLAN_ARTIFACTS_SCHEMA_VERSION,
    RUNS_SCHEMA_VERSION,
    TABLE_SCHEMAS,
)
from codeanatomy_assets.errors import DiagnosticsError

PLAN_ARTIFACTS_EVENT: Final = "datafusion_plan_artifacts_v1"
"""Rows of this name are routed to ``datafusion_plan_artifacts_v1``."""

RUN_EVENTS: Final = frozenset({RUN_STARTED_EVENT, RUN_FINISHED_EVENT})
"""Rows of these names are routed to ``datafusion_runs_v1``."""

DEFAULT_FLUSH_ROWS: Final = 1_000
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

_TABLE_ORDER: Final = (DIAGNOSTICS_EVENTS_TABLE, DATAFUSION_RUNS_TABLE, DATAFUSION_PLAN_ARTIFACTS_TABLE)
_OPENED: Final[dict[str, tuple[tuple[int, int, int], DeltaTable]]] = {}
"""The local store tables this process opened, by path, with the identity of their first commit file
(shared by every store object; a table deleted and created again at the same path is opened afresh)."""
_LOCK: Final = threading.RLock()
"""Held by every store object of the process while it uses a table or its buffer (the tables are shared)."""
_INT_RANGE: Final = range(-(2**63), 2**63)


def table_configuration(table: str) -> dict[str, str]:
    """The Delta table properties the store creates ``table`` with."""
    return {
        "delta.appendOnly": "true",
        "delta.checkpointInterval": str(CHECKPOINT_INTERVAL),
        "delta.dataSkippingStatsColumns": ",".join(STATS_COLUMNS[table]),
    }


# --- typed rows --------------------------------------------------------------------------------------


def _json_text(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _coerce(field: pa.Field, value: object, *, row: str) -> object:
    """``value`` converted to the column type of ``field``; ``ValueError`` naming the row and column."""
    if value is None:
        if not field.nullable:
            raise ValueError(f"{row}: payload field {field.name!r} is required")
        return None
    kind = field.type
    if pa.types.is_string(kind):
        return value if isinstance(value, str) else _json_text(value)
    if pa.types.is_boolean(kind):
        if isinstance(value, bool):
            return value
        raise ValueError(f"{row}: payload field {field.name!r} must be a boolean, got {value!r}")
    if pa.types.is_integer(kind):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"{row}: payload field {field.name!r} must be an integer, got {value!r}")
        try:
            number = int(value)
        except ValueError:
            raise ValueError(
                f"{row}: payload field {field.name!r} must be an integer, got {value!r}"
            ) from None
        if number not in _INT_RANGE:
            raise ValueError(f"{row}: payload field {field.name!r} is out of range: {number}")
        return number
    raise ValueError(f"{row}: column {field.name!r} has unsupported type {kind}")  # schema bug, not data


def _typed_row(schema: pa.Schema, values: Mapping[str, object], *, row: str) -> dict[str, object]:
    return {field.name: _coerce(field, values.get(field.name), row=row) for field in schema}


def run_row(event: DiagnosticEvent) -> dict[str, object]:
    """The ``datafusion_runs_v1`` row of a run started/finished event (``ValueError`` on a bad payload)."""
    payload = event.payload
    label = f"row {event.name} (event {event.event_id})"
    status = payload.get("status")
    if status not in {s.value for s in RunStatus}:
        raise ValueError(f"{label}: payload status {status!r} is not one of running, completed, failed")
    metadata = payload.get("metadata")
    values = {
        **payload,
        "run_id": event.run_id,
        "metadata": None if metadata is None else _json_text(metadata),
        "schema_version": RUNS_SCHEMA_VERSION,
        "error_type": payload.get("error_type", payload.get(attr.ERROR_TYPE)),
        "error_message": payload.get(ERROR_MESSAGE_KEY),
        "trace_id": event.trace_id,
        "event_name": event.name,
    }
    return _typed_row(TABLE_SCHEMAS[DATAFUSION_RUNS_TABLE], values, row=label)


def plan_artifact_row(event: DiagnosticEvent) -> dict[str, object]:
    """The ``datafusion_plan_artifacts_v1`` row of a plan artifact event (fields from the payload)."""
    payload = event.payload
    values = {
        **payload,
        "event_time_unix_ms": payload.get("event_time_unix_ms", event.event_time_unix_ms),
        "run_id": event.run_id,
        "plan": event.plan if event.plan is not None else payload.get("plan"),
        "error_type": payload.get("error_type", payload.get(attr.ERROR_TYPE)),
        "schema_version": PLAN_ARTIFACTS_SCHEMA_VERSION,
    }
    label = f"row {event.name} (event {event.event_id})"
    return _typed_row(TABLE_SCHEMAS[DATAFUSION_PLAN_ARTIFACTS_TABLE], values, row=label)


def _routed_rows(name: str, row: Mapping[str, object]) -> list[tuple[str, dict[str, object]]]:
    """Validate one recorded row and return ``(table, row)`` for every table it goes to."""
    if not isinstance(row, Mapping):
        raise ValueError(f"diagnostics row for {name!r} must be a mapping, got {type(row).__name__}")
    try:
        event = DiagnosticEvent.from_row(row)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"invalid diagnostics row for {name!r}: {exc!r}") from exc
    if event.name != name:
        raise ValueError(f"row named {event.name!r} recorded under {name!r}")
    if event.event_time_unix_ms not in _INT_RANGE:
        raise ValueError(f"row {name!r}: event_time_unix_ms out of range: {event.event_time_unix_ms}")
    routed = [(DIAGNOSTICS_EVENTS_TABLE, event.to_row())]
    if name in RUN_EVENTS:
        routed.append((DATAFUSION_RUNS_TABLE, run_row(event)))
    elif name == PLAN_ARTIFACTS_EVENT:
        routed.append((DATAFUSION_PLAN_ARTIFACTS_TABLE, plan_artifact_row(event)))
    return routed


# --- files -------------------------------------------------------------------------------------------


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


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


def _identity(uri: str) -> tuple[int, int, int] | None:
    """Device, inode and mtime of a local table's first commit file; ``None`` for object stores and when
    it is missing (not created yet, or removed by log retention): such tables are not shared."""
    if not _is_local(uri):
        return None
    try:
        first = os.stat(os.path.join(uri.removeprefix("file://"), "_delta_log", f"{0:020d}.json"))
    except OSError:
        return None
    return first.st_dev, first.st_ino, first.st_mtime_ns


def _conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """``data`` with exactly the columns of ``schema``: missing ones (older files) read as null."""
    columns = [
        data.column(field.name).cast(field.type)
        if field.name in data.column_names
        else pa.nulls(data.num_rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, schema=pa.schema([f.with_nullable(True) for f in schema]))


class DeltaDiagnosticsStore:
    """Append-only Delta tables of diagnostics, written by any number of processes, read per run.

    ``root`` is ``<home>/lake/_diagnostics`` (a local path or an object-store URI with
    ``storage_options``). Rows are buffered until :meth:`flush`, until more than ``flush_rows`` are
    pending, or until the ``with`` block ends.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        storage_options: Mapping[str, str] | None = None,
        flush_rows: int = DEFAULT_FLUSH_ROWS,
    ) -> None:
        text = os.fspath(root)
        self.root = os.path.abspath(text.removeprefix("file://")) if _is_local(text) else text.rstrip("/")
        self.flush_rows = flush_rows
        self._storage_options = dict(storage_options) if storage_options else None
        self._lock = _LOCK
        self._pending: dict[str, dict[str, list[pa.Table]]] = {}
        self._pending_rows = 0
        self._tables: dict[str, DeltaTable] = {}

    # -- sink protocol ----------------------------------------------------------------------------

    def record_events(self, name: str, rows: Sequence[Mapping[str, object]]) -> None:
        """Validate and buffer a batch of rows named ``name`` (``ValueError`` rejects the whole batch)."""
        self._accept(name, rows)

    def record_artifact(self, name: str, payload: Mapping[str, object]) -> None:
        """Validate and buffer one artifact row named ``name``."""
        self._accept(name, [payload])

    def _accept(self, name: str, rows: Iterable[Mapping[str, object]]) -> None:
        grouped: dict[tuple[str, str], list[dict[str, object]]] = defaultdict(list)
        for row in rows:
            for table, typed in _routed_rows(name, row):
                grouped[table, str(typed["run_id"])].append(typed)
        batches: list[tuple[str, str, pa.Table]] = []
        for (table, run_id), typed_rows in grouped.items():
            try:
                batches.append((table, run_id, pa.Table.from_pylist(typed_rows, schema=TABLE_SCHEMAS[table])))
            except (pa.ArrowException, TypeError, OverflowError) as exc:
                raise ValueError(f"rows for {name!r} do not fit table {table}: {exc}") from exc
        with self._lock:
            for table, run_id, batch in batches:
                self._pending.setdefault(table, {}).setdefault(run_id, []).append(batch)
                self._pending_rows += batch.num_rows if table == DIAGNOSTICS_EVENTS_TABLE else 0
            if self._pending_rows > self.flush_rows:
                self.flush()

    @property
    def pending_rows(self) -> int:
        """Rows recorded and not yet flushed."""
        return self._pending_rows

    # -- writing ----------------------------------------------------------------------------------

    def table_uri(self, table: str) -> str:
        """Where ``table`` lives."""
        return os.path.join(self.root, table) if _is_local(self.root) else f"{self.root}/{table}"

    def flush(self) -> None:
        """Write every buffered row: one Delta commit per table, one Parquet file per run in it.

        Raises :class:`DiagnosticsError` naming the table and path when a table cannot be written; that
        table is unchanged and its rows stay buffered, the other tables are still written.
        """
        with self._lock:
            pending, self._pending, self._pending_rows = self._pending, {}, 0
            failure: DiagnosticsError | None = None
            for table in _TABLE_ORDER:
                groups = pending.get(table)
                if not groups:
                    continue
                try:
                    self._commit(table, {run_id: pa.concat_tables(parts) for run_id, parts in groups.items()})
                except DiagnosticsError as exc:
                    failure = failure or exc
                    self._pending[table] = groups
                    if table == DIAGNOSTICS_EVENTS_TABLE:
                        self._pending_rows = sum(t.num_rows for parts in groups.values() for t in parts)
            if failure is not None:
                raise failure

    def _commit(self, table: str, runs: Mapping[str, pa.Table]) -> None:
        uri = self.table_uri(table)
        rows = sum(data.num_rows for data in runs.values())
        try:
            delta = self._writable(table)
            filesystem, base = self._filesystem(table)
            actions: list[AddAction | RemoveAction] = [
                self._write_file(table, filesystem, base, data) for data in runs.values()
            ]
            delta.create_write_transaction(
                actions,
                "append",
                delta.schema(),
                commit_properties=CommitProperties(
                    max_commit_retries=MAX_COMMIT_RETRIES,
                    custom_metadata={"codeanatomy.writer": "DeltaDiagnosticsStore", "rows": str(rows)},
                ),
            )
        except Exception as exc:  # any storage or protocol failure is this one error, with its cause chained
            raise DiagnosticsError(
                f"flush of {rows} rows to diagnostics table {table} at {uri} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _write_file(self, table: str, filesystem: FileSystem, base: str, data: pa.Table) -> AddAction:
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

    def _filesystem(self, table: str) -> tuple[FileSystem, str]:
        """A filesystem and the table's base path in it (local: native; object stores: via deltalake)."""
        uri = self.table_uri(table)
        if _is_local(uri):
            return LocalFileSystem(), uri
        # deltalake's handler implements pyarrow's FileSystemHandler interface without subclassing it.
        handler = DeltaStorageHandler(uri, self._storage_options)
        return PyFileSystem(handler), ""  # pyright: ignore[reportArgumentType]

    def _delta(self, table: str, *, create: bool) -> DeltaTable | None:
        """The table at its latest version; created when missing and ``create``; ``None`` when missing.

        Opened once per process (:data:`_OPENED`) and brought up to date with ``update_incremental``:
        each step of a build has its own store, and opening replays the log from its checkpoint.
        """
        uri = self.table_uri(table)
        identity = _identity(uri)
        shared = _OPENED.get(uri)
        cached = self._tables.get(table) or (shared[1] if shared and shared[0] == identity else None)
        if cached is not None:
            try:
                cached.update_incremental()
            except Exception:  # noqa: BLE001 - the folder was replaced or removed under us: open it afresh below
                _OPENED.pop(uri, None)
                self._tables.pop(table, None)
            else:
                self._tables[table] = cached
                return cached
        try:
            delta = DeltaTable(uri, storage_options=self._storage_options)
        except TableNotFoundError:
            if not create:
                return None
            # mode="ignore": when several processes race to create the table, every one ends up with it.
            DeltaTable.create(
                uri,
                TABLE_SCHEMAS[table],
                mode="ignore",
                name=table,
                configuration=table_configuration(table),
                storage_options=self._storage_options,
            )
            delta = DeltaTable(uri, storage_options=self._storage_options)
        self._add_missing_columns(table, delta)
        self._tables[table] = delta
        if identity is not None:
            _OPENED[uri] = (identity, delta)
        return delta

    def _writable(self, table: str) -> DeltaTable:
        """The table at its latest version, created when missing."""
        delta = self._delta(table, create=True)
        if delta is None:  # _delta creates the table or raises
            raise DiagnosticsError(
                f"diagnostics table {table} at {self.table_uri(table)} could not be created"
            )
        return delta

    @staticmethod
    def _add_missing_columns(table: str, delta: DeltaTable) -> None:
        """Append columns that a newer schema constant added (the append-only rule makes this safe)."""
        present = {field.name for field in delta.schema().fields}
        missing = [field.with_nullable(True) for field in TABLE_SCHEMAS[table] if field.name not in present]
        if missing:
            delta.alter.add_columns(Schema.from_arrow(pa.schema(missing)).fields)

    def compact(self) -> dict[str, dict[str, Any]]:
        """Rewrite small files clustered by ``run_id`` (Z-order), so reads of one run still prune.

        Plain bin-packing would mix runs in every file and defeat the ``run_id`` statistics. Returns
        deltalake's metrics per table. Pending rows are flushed first.
        """
        self.flush()
        with self._lock:
            metrics: dict[str, dict[str, Any]] = {}
            for table in _TABLE_ORDER:
                delta = self._delta(table, create=False)
                if delta is None:
                    continue
                try:
                    metrics[table] = delta.optimize.z_order(
                        ["run_id"], commit_properties=CommitProperties(max_commit_retries=MAX_COMMIT_RETRIES)
                    )
                except Exception as exc:  # as for flush: one error naming the table
                    raise DiagnosticsError(
                        f"compaction of diagnostics table {table} at {self.table_uri(table)} failed: {exc}"
                    ) from exc
            return metrics

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.flush()

    # -- reading ----------------------------------------------------------------------------------

    def candidate_files(self, table: str, run_id: str | None = None) -> list[str]:
        """Paths (relative to the table) of the files a read of ``run_id`` opens: deltalake's pruned list."""
        with self._lock:
            delta = self._delta(table, create=False)
        if delta is None:
            return []
        uris = (
            delta.file_uris()
            if run_id is None
            else delta.file_uris(file_pruning_predicate=[("run_id", "=", run_id)])
        )
        prefixes = (
            delta.table_uri.rstrip("/") + "/",
            delta.table_uri.removeprefix("file://").rstrip("/") + "/",
        )
        return [unquote(_strip_prefix(uri, prefixes)) for uri in uris]

    def _read(
        self,
        table: str,
        files: Sequence[str],
        *,
        run_id: str | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        schema = TABLE_SCHEMAS[table]
        if columns is not None:
            schema = pa.schema([schema.field(name) for name in columns])
        if not files:
            return schema.empty_table()
        filesystem, base = self._filesystem(table)
        parts = [
            _conform(pq.read_table(f"{base}/{path}" if base else path, filesystem=filesystem), schema)
            for path in files
        ]
        data = pa.concat_tables(parts)
        if run_id is not None:
            data = data.filter(pc.equal(data.column("run_id"), pa.scalar(run_id)))  # pruning keeps a superset
        return data

    def read_events(
        self, run_id: str | None = None, *, names: Iterable[str] | None = None
    ) -> list[DiagnosticEvent]:
        """Events of one run (or all), optionally only some names, ordered by event time then event id."""
        data = self._read(
            DIAGNOSTICS_EVENTS_TABLE, self.candidate_files(DIAGNOSTICS_EVENTS_TABLE, run_id), run_id=run_id
        )
        if names is not None:
            data = data.filter(
                pc.is_in(data.column("name"), value_set=pa.array(sorted(set(names)), pa.string()))
            )
        events = [DiagnosticEvent.from_row(row) for row in data.to_pylist()]
        return sorted(events, key=lambda event: (event.event_time_unix_ms, event.event_id))

    def read_runs(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """One row per run, its latest state (the finished row once there is one), ordered by start time.

        ``metadata`` is decoded from JSON to a dict.
        """
        data = self._read(
            DATAFUSION_RUNS_TABLE, self.candidate_files(DATAFUSION_RUNS_TABLE, run_id), run_id=run_id
        )
        latest: dict[str, dict[str, Any]] = {}
        for row in data.to_pylist():
            current = latest.get(row["run_id"])
            if current is None or _run_state_key(row) >= _run_state_key(current):
                latest[row["run_id"]] = row
        for row in latest.values():
            row["metadata"] = json.loads(row["metadata"]) if row["metadata"] else {}
        return sorted(latest.values(), key=lambda row: (row["start_time_unix_ms"], row["run_id"]))

    def read_plan_artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """The plan artifact rows of one run, ordered by event time then plan name."""
        table = DATAFUSION_PLAN_ARTIFACTS_TABLE
        rows = self._read(table, self.candidate_files(table, run_id), run_id=run_id).to_pylist()
        return sorted(rows, key=lambda row: (row["event_time_unix_ms"], row["plan"] or ""))

    def latest_run_id(self) -> str | None:
        """The run started most recently (by ``start_time_unix_ms``), found from the log's statistics."""
        table = DATAFUSION_RUNS_TABLE
        files = self._files_with_stats(table)
        if not files:
            return None
        top = max(
            (
                stats["max.start_time_unix_ms"]
                for stats in files
                if stats["max.start_time_unix_ms"] is not None
            ),
            default=None,
        )
        candidates = [
            stats["path"]
            for stats in files
            if stats["max.start_time_unix_ms"] is None or stats["max.start_time_unix_ms"] == top
        ]
        data = self._read(table, candidates, columns=("run_id", "start_time_unix_ms"))
        rows = data.to_pylist()
        if not rows:
            return None
        return max(rows, key=lambda row: (row["start_time_unix_ms"], row["run_id"]))["run_id"]

    def run_ids(self) -> list[str]:
        """Every run id in the events table, ordered by the run's first event time then id."""
        table = DIAGNOSTICS_EVENTS_TABLE
        first_seen: dict[str, int] = {}
        to_read: list[str] = []
        for stats in self._files_with_stats(table):
            low, high, start = stats["min.run_id"], stats["max.run_id"], stats["min.event_time_unix_ms"]
            if low is not None and low == high and start is not None:
                first_seen[low] = min(start, first_seen.get(low, start))
            else:
                to_read.append(stats["path"])
        for row in self._read(table, to_read, columns=("run_id", "event_time_unix_ms")).to_pylist():
            run, start = row["run_id"], row["event_time_unix_ms"]
            first_seen[run] = min(start, first_seen.get(run, start))
        return sorted(first_seen, key=lambda run: (first_seen[run], run))

    def _files_with_stats(self, table: str) -> list[dict[str, Any]]:
        """Per active file: its path and the min/max statistics of the table's statistics columns."""
        with self._lock:
            delta = self._delta(table, create=False)
        if delta is None:
            return []
        actions = pa.table(delta.get_add_actions(flatten=True))
        wanted = ["path"] + [f"{edge}.{column}" for column in STATS_COLUMNS[table] for edge in ("min", "max")]
        return [
            {key: (unquote(row[key]) if key == "path" else row.get(key)) for key in wanted}
            for row in actions.to_pylist()
        ]


def _strip_prefix(uri: str, prefixes: Iterable[str]) -> str:
    for prefix in prefixes:
        if uri.startswith(prefix):
            return uri[len(prefix) :]
    raise DiagnosticsError(f"file {uri} is not under its table ({', '.join(prefixes)})")


def _run_state_key(row: Mapping[str, Any]) -> tuple[int, int]:
    """Orders the rows of one run: any finished row after the started one, later finishes last."""
    finished = int(row["event_name"] == RUN_FINISHED_EVENT or row["status"] != RunStatus.RUNNING.value)
    return finished, row["end_time_unix_ms"] or 0
