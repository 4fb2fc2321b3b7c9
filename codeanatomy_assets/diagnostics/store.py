"""The durable diagnostics store: append-only Delta tables under ``<home>/lake/_diagnostics``.

:class:`DeltaDiagnosticsStore` is a :class:`~codeanatomy_assets.diagnostics.sinks.DiagnosticsSink`: every
row goes to ``diagnostics_events_v1``, run and plan artifact rows also go, typed, to ``datafusion_runs_v1``
and ``datafusion_plan_artifacts_v1`` (:mod:`~codeanatomy_assets.diagnostics.table_rows`).

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
exit). A checkpoint every ``CHECKPOINT_INTERVAL`` commits (``delta.checkpointInterval``, written by
deltalake's post-commit hook) keeps log replay bounded however many runs accumulate
(:mod:`~codeanatomy_assets.diagnostics.store_tables` creates and opens the tables).

Concurrent writers, in threads or processes, are safe: appends never conflict, and deltalake retries a
commit that lost the race for a version (up to ``MAX_COMMIT_RETRIES`` times).

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
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction, RemoveAction
from pyarrow.fs import FileSystem

from codeanatomy_assets.diagnostics.event_names import DATAFUSION_RUN_FINISHED
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.runs import RunStatus
from codeanatomy_assets.diagnostics.schemas import (
    DATAFUSION_PLAN_ARTIFACTS_TABLE,
    DATAFUSION_RUNS_TABLE,
    DIAGNOSTICS_EVENTS_TABLE,
    TABLE_SCHEMAS,
)
from codeanatomy_assets.diagnostics.store_tables import (
    MAX_COMMIT_RETRIES,
    TABLE_ORDER,
    FileStats,
    files_with_stats,
    is_local,
    open_table,
    read_data_files,
    relative_paths,
    table_filesystem,
    write_data_file,
)
from codeanatomy_assets.diagnostics.table_rows import routed_rows
from codeanatomy_assets.errors import DiagnosticsError

DEFAULT_FLUSH_ROWS: Final = 1_000

_LOCK: Final = threading.RLock()
"""Held by every store object of the process while it uses a table or its buffer (the tables are shared)."""
_COMMIT_ATTEMPTS: Final = 5
"""Tries of one append that lost races to other writers' changes of the table's metadata."""


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
        self.root = os.path.abspath(text.removeprefix("file://")) if is_local(text) else text.rstrip("/")
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
        batches = _batches(name, rows)
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
        return os.path.join(self.root, table) if is_local(self.root) else f"{self.root}/{table}"

    def flush(self) -> None:
        """Write every buffered row: one Delta commit per table, one Parquet file per run in it.

        Raises :class:`DiagnosticsError` naming the table and path when a table cannot be written; that
        table is unchanged and its rows stay buffered, the other tables are still written.
        """
        with self._lock:
            pending, self._pending, self._pending_rows = self._pending, {}, 0
            failures = [
                self._flush_table(table, pending[table]) for table in TABLE_ORDER if pending.get(table)
            ]
            failure = next((f for f in failures if f is not None), None)
            if failure is not None:
                raise failure

    def _flush_table(self, table: str, groups: dict[str, list[pa.Table]]) -> DiagnosticsError | None:
        """Commit the buffered rows of one table; on failure they go back to the buffer and the error is
        returned."""
        try:
            self._commit(table, {run_id: pa.concat_tables(parts) for run_id, parts in groups.items()})
        except DiagnosticsError as exc:
            self._pending[table] = groups
            if table == DIAGNOSTICS_EVENTS_TABLE:
                self._pending_rows = sum(t.num_rows for parts in groups.values() for t in parts)
            return exc
        return None

    def _commit(self, table: str, runs: Mapping[str, pa.Table]) -> None:
        rows = sum(data.num_rows for data in runs.values())
        try:
            delta = self._writable(table)
            filesystem, base = self._filesystem(table)
            actions: list[AddAction | RemoveAction] = [
                write_data_file(table, filesystem, base, data) for data in runs.values()
            ]
            self._append(table, delta, actions, rows)
        except Exception as exc:  # any storage or protocol failure is this one error, with its cause chained
            raise DiagnosticsError(
                f"flush of {rows} rows to diagnostics table {table} at {self.table_uri(table)} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _append(
        self, table: str, delta: DeltaTable, actions: list[AddAction | RemoveAction], rows: int
    ) -> None:
        """Commit ``actions`` as an append to ``delta``. A commit that lost a race to another writer's
        change of the table's metadata (two processes creating it at once) is retried on the table's latest
        version, with the same data files: each file is committed once or not at all."""
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            try:
                delta.create_write_transaction(
                    actions, "append", delta.schema(), commit_properties=_commit_properties(rows)
                )
                return
            except CommitFailedError:
                if attempt == _COMMIT_ATTEMPTS:
                    raise
                delta = self._writable(table)  # brought up to date with the winner's commit

    def _filesystem(self, table: str) -> tuple[FileSystem, str]:
        """A filesystem and the table's base path in it (local: native; object stores: via deltalake)."""
        return table_filesystem(self.table_uri(table), self._storage_options)

    def _delta(self, table: str, *, create: bool) -> DeltaTable | None:
        """The table at its latest version; created when missing and ``create``; ``None`` when missing."""
        delta = open_table(
            self.table_uri(table),
            table,
            self._storage_options,
            create=create,
            known=self._tables.pop(table, None),
        )
        if delta is not None:
            self._tables[table] = delta
        return delta

    def _writable(self, table: str) -> DeltaTable:
        """The table at its latest version, created when missing."""
        delta = self._delta(table, create=True)
        if delta is None:  # _delta creates the table or raises
            raise DiagnosticsError(
                f"diagnostics table {table} at {self.table_uri(table)} could not be created"
            )
        return delta

    def compact(self) -> dict[str, dict[str, Any]]:
        """Rewrite small files clustered by ``run_id`` (Z-order), so reads of one run still prune.

        Plain bin-packing would mix runs in every file and defeat the ``run_id`` statistics. Returns
        deltalake's metrics per table. Pending rows are flushed first.
        """
        self.flush()
        with self._lock:
            metrics: dict[str, dict[str, Any]] = {}
            for table in TABLE_ORDER:
                delta = self._delta(table, create=False)
                if delta is not None:
                    metrics[table] = self._z_order(table, delta)
            return metrics

    def _z_order(self, table: str, delta: DeltaTable) -> dict[str, Any]:
        try:
            return delta.optimize.z_order(
                ["run_id"], commit_properties=CommitProperties(max_commit_retries=MAX_COMMIT_RETRIES)
            )
        except Exception as exc:  # as for flush: one error naming the table
            raise DiagnosticsError(
                f"compaction of diagnostics table {table} at {self.table_uri(table)} failed: {exc}"
            ) from exc

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
        if run_id is None:
            return relative_paths(delta, delta.file_uris())
        return relative_paths(delta, delta.file_uris(file_pruning_predicate=[("run_id", "=", run_id)]))

    def _read(
        self, table: str, files: Sequence[str], *, run_id: str | None = None, columns: Sequence[str] = ()
    ) -> pa.Table:
        """The rows of ``files`` (``run_id``'s only when given), all columns or only ``columns``."""
        schema = TABLE_SCHEMAS[table]
        if columns:
            schema = pa.schema([schema.field(name) for name in columns])
        if not files:
            return schema.empty_table()
        data = pa.concat_tables(read_data_files(*self._filesystem(table), files, schema))
        if run_id is not None:
            data = data.filter(pc.equal(data.column("run_id"), pa.scalar(run_id)))  # pruning keeps a superset
        return data

    def _read_run(self, table: str, run_id: str | None) -> pa.Table:
        """The rows of ``run_id`` (of every run when ``None``), from the files that can hold them."""
        return self._read(table, self.candidate_files(table, run_id), run_id=run_id)

    def read_events(
        self, run_id: str | None = None, *, names: Iterable[str] | None = None
    ) -> list[DiagnosticEvent]:
        """Events of one run (or all), optionally only some names, ordered by event time then event id."""
        data = self._read_run(DIAGNOSTICS_EVENTS_TABLE, run_id)
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
        latest: dict[str, dict[str, Any]] = {}
        for row in self._read_run(DATAFUSION_RUNS_TABLE, run_id).to_pylist():
            current = latest.get(row["run_id"])
            if current is None or _run_state_key(row) >= _run_state_key(current):
                latest[row["run_id"]] = row
        for row in latest.values():
            row["metadata"] = json.loads(row["metadata"]) if row["metadata"] else {}
        return sorted(latest.values(), key=lambda row: (row["start_time_unix_ms"], row["run_id"]))

    def read_plan_artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """The plan artifact rows of one run, ordered by event time then plan name."""
        rows = self._read_run(DATAFUSION_PLAN_ARTIFACTS_TABLE, run_id).to_pylist()
        return sorted(rows, key=lambda row: (row["event_time_unix_ms"], row["plan"] or ""))

    def latest_run_id(self) -> str | None:
        """The run started most recently (by ``start_time_unix_ms``), found from the log's statistics."""
        files = _latest_start_files(self._files_with_stats(DATAFUSION_RUNS_TABLE))
        data = self._read(DATAFUSION_RUNS_TABLE, files, columns=("run_id", "start_time_unix_ms"))
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
            low, high = stats.low["run_id"], stats.high["run_id"]
            start = stats.low["event_time_unix_ms"]
            if low is not None and low == high and start is not None:
                first_seen[low] = min(start, first_seen.get(low, start))
            else:
                to_read.append(stats.path)
        for row in self._read(table, to_read, columns=("run_id", "event_time_unix_ms")).to_pylist():
            run, start = row["run_id"], row["event_time_unix_ms"]
            first_seen[run] = min(start, first_seen.get(run, start))
        return sorted(first_seen, key=lambda run: (first_seen[run], run))

    def _files_with_stats(self, table: str) -> list[FileStats]:
        """Per active file: its path and the min/max statistics of the table's statistics columns."""
        with self._lock:
            delta = self._delta(table, create=False)
        return [] if delta is None else files_with_stats(delta, table)


def _batches(name: str, rows: Iterable[Mapping[str, object]]) -> list[tuple[str, str, pa.Table]]:
    """``(table, run_id, batch)`` of the rows recorded under ``name`` (``ValueError`` on a bad row)."""
    grouped: dict[tuple[str, str], list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        for table, typed in routed_rows(name, row):
            grouped[table, str(typed["run_id"])].append(typed)
    batches: list[tuple[str, str, pa.Table]] = []
    for (table, run_id), typed_rows in grouped.items():
        try:
            batches.append((table, run_id, pa.Table.from_pylist(typed_rows, schema=TABLE_SCHEMAS[table])))
        except (pa.ArrowException, TypeError, OverflowError) as exc:
            raise ValueError(f"rows for {name!r} do not fit table {table}: {exc}") from exc
    return batches


def _commit_properties(rows: int) -> CommitProperties:
    return CommitProperties(
        max_commit_retries=MAX_COMMIT_RETRIES,
        custom_metadata={"codeanatomy.writer": "DeltaDiagnosticsStore", "rows": str(rows)},
    )


def _latest_start_files(files: Sequence[FileStats]) -> list[str]:
    """The files that can hold the latest ``start_time_unix_ms``: its maximum, or no statistic."""
    starts = [stats.high["start_time_unix_ms"] for stats in files]
    top = max((start for start in starts if start is not None), default=None)
    return [stats.path for stats, start in zip(files, starts, strict=True) if start is None or start == top]


def _run_state_key(row: Mapping[str, Any]) -> tuple[int, int]:
    """Orders the rows of one run: any finished row after the started one, later finishes last."""
    finished = int(row["event_name"] == DATAFUSION_RUN_FINISHED or row["status"] != RunStatus.RUNNING.value)
    return finished, row["end_time_unix_ms"] or 0
