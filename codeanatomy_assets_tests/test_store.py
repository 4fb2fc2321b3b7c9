"""The durable store: schemas, routing, validation, failure, concurrency, pruning, checkpoints."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from codeanatomy_assets.diagnostics.event_names import (
    DATAFUSION_PLAN_ARTIFACTS,
    DATAFUSION_RUN_FINISHED,
    DATAFUSION_RUN_STARTED,
)
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.runs import tracked_run
from codeanatomy_assets.diagnostics.schemas import (
    DATAFUSION_PLAN_ARTIFACTS_TABLE,
    DATAFUSION_PLAN_ARTIFACTS_V1,
    DATAFUSION_RUNS_TABLE,
    DATAFUSION_RUNS_V1,
    DIAGNOSTICS_EVENTS_TABLE,
    DIAGNOSTICS_EVENTS_V1,
)
from codeanatomy_assets.diagnostics.sinks import emit
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.store_tables import CHECKPOINT_INTERVAL
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.errors import DiagnosticsError

# --- schemas: columns are only ever appended ---------------------------------------------------------

GOLDEN_COLUMNS = {
    DIAGNOSTICS_EVENTS_TABLE: [
        "schema_version", "event_id", "name", "run_id", "event_time_unix_ms", "severity", "category", "kind",
        "code", "message", "dataset", "plan", "asset_key", "trace_id", "span_id", "payload",
    ],
    DATAFUSION_RUNS_TABLE: [
        "run_id", "label", "start_time_unix_ms", "end_time_unix_ms", "status", "duration_ms", "metadata",
        "schema_version", "error_type", "error_message", "trace_id", "event_name",
    ],
    DATAFUSION_PLAN_ARTIFACTS_TABLE: [
        "event_time_unix_ms", "run_id", "plan_hash", "sql", "explain", "explain_analyze", "substrait_b64",
        "substrait_roundtrip_ok", "unparsed_sql", "logical_plan", "optimized_plan", "physical_plan",
        "graphviz", "partition_count", "join_operators", "error_type", "error_message", "plan",
        "schema_version",
    ],
}  # fmt: skip
"""Append new columns at the end of a list; never edit, reorder or remove an entry."""

SEED_COLUMNS = {DATAFUSION_RUNS_TABLE: 7, DATAFUSION_PLAN_ARTIFACTS_TABLE: 17}


@pytest.mark.parametrize(
    ("table", "schema"),
    [
        (DIAGNOSTICS_EVENTS_TABLE, DIAGNOSTICS_EVENTS_V1),
        (DATAFUSION_RUNS_TABLE, DATAFUSION_RUNS_V1),
        (DATAFUSION_PLAN_ARTIFACTS_TABLE, DATAFUSION_PLAN_ARTIFACTS_V1),
    ],
)
def test_schema_column_order_is_golden(table: str, schema: pa.Schema) -> None:
    golden = GOLDEN_COLUMNS[table]
    assert schema.names[: len(golden)] == golden, "columns may only be appended"
    assert schema.names == golden, "a column was appended: add it to the golden list too"
    for field in list(schema)[SEED_COLUMNS.get(table, len(golden)) :]:
        assert field.nullable, f"appended column {field.name} must be nullable"


# --- helpers ------------------------------------------------------------------------------------------


def _event(run_id: str, i: int = 0, name: str = "load_v1") -> DiagnosticEvent:
    return DiagnosticEvent(
        name=name, run_id=run_id, severity=Severity.INFO, category=Category.EXTRACT, payload={"i": i}
    )


def _plan_artifact(run_id: str, **payload: object) -> DiagnosticEvent:
    return DiagnosticEvent(
        name=DATAFUSION_PLAN_ARTIFACTS,
        run_id=run_id,
        severity=Severity.INFO,
        category=Category.PLAN_PHASE,
        kind=EventKind.ARTIFACT,
        plan="calls_by_module",
        payload={"plan_hash": "abc", "sql": "select 1", "partition_count": 2, **payload},
    )


@pytest.fixture
def store(tmp_path: Path) -> DeltaDiagnosticsStore:
    return DeltaDiagnosticsStore(tmp_path / "lake" / "_diagnostics")


# --- append, read, route ------------------------------------------------------------------------------


def test_empty_store_reads_nothing(store: DeltaDiagnosticsStore) -> None:
    assert store.read_events() == []
    assert store.read_runs() == []
    assert store.read_plan_artifacts("r") == []
    assert store.latest_run_id() is None
    assert store.run_ids() == []
    store.flush()  # nothing buffered: no table is created
    assert not Path(store.root).exists()


def test_append_and_read_back(store: DeltaDiagnosticsStore) -> None:
    written = [_event("r1", i) for i in range(5)] + [_event("r2", i) for i in range(3)]
    emit(store, *written)
    assert store.read_events() == []  # buffered until flush
    store.flush()
    assert store.read_events("r1") == sorted(written[:5], key=lambda e: (e.event_time_unix_ms, e.event_id))
    assert len(store.read_events()) == 8
    assert store.read_events("r2", names=["nope_v1"]) == []
    assert store.pending_rows == 0


def test_rows_are_routed_to_the_three_tables(store: DeltaDiagnosticsStore) -> None:
    with store, tracked_run(label="build", sink=store, metadata={"token": "canary-9"}) as run:
        emit(store, _event(run.run_id), _plan_artifact(run.run_id, join_operators=["HashJoinExec"]))
    names = sorted(e.name for e in store.read_events(run.run_id))
    assert names == sorted(
        ["load_v1", DATAFUSION_PLAN_ARTIFACTS, DATAFUSION_RUN_STARTED, DATAFUSION_RUN_FINISHED]
    )

    (run_row,) = store.read_runs(run.run_id)
    assert run_row["status"] == "completed"
    assert run_row["label"] == "build"
    assert run_row["event_name"] == DATAFUSION_RUN_FINISHED
    assert run_row["duration_ms"] == run_row["end_time_unix_ms"] - run_row["start_time_unix_ms"]
    assert run_row["metadata"] == {"token": "***REDACTED***"}
    assert run_row["schema_version"] == 1

    (plan,) = store.read_plan_artifacts(run.run_id)
    assert plan["plan"] == "calls_by_module"
    assert plan["partition_count"] == 2
    assert plan["join_operators"] == '["HashJoinExec"]'
    assert plan["run_id"] == run.run_id
    assert len(store.candidate_files(DATAFUSION_RUNS_TABLE)) == 1
    assert len(store.candidate_files(DATAFUSION_PLAN_ARTIFACTS_TABLE)) == 1


def test_failed_run_row_has_error_fields(store: DeltaDiagnosticsStore) -> None:
    with pytest.raises(RuntimeError), store, tracked_run(label="bad", sink=store):
        raise RuntimeError("exploded")
    (row,) = store.read_runs()
    assert (row["status"], row["error_type"], row["error_message"]) == ("failed", "RuntimeError", "exploded")


@pytest.mark.parametrize(
    ("name", "row", "match"),
    [
        (
            "load_v1",
            {"name": "load_v1", "run_id": "r", "event_time_unix_ms": 0, "category": "cli"},
            "severity",
        ),
        ("load_v1", {"run_id": "r"}, "invalid diagnostics row"),
        ("load_v1", _event("r", name="other_v1").to_row(), "recorded under"),
        ("load_v1", ["not", "a", "mapping"], "mapping"),
        (DATAFUSION_PLAN_ARTIFACTS, _plan_artifact("r", partition_count="many").to_row(), "partition_count"),
        (DATAFUSION_PLAN_ARTIFACTS, _plan_artifact("r", substrait_roundtrip_ok="yes").to_row(), "boolean"),
        (DATAFUSION_RUN_STARTED, _event("r", name=DATAFUSION_RUN_STARTED).to_row(), "status"),
    ],
)
def test_invalid_rows_are_rejected_when_recorded(
    store: DeltaDiagnosticsStore, name: str, row: object, match: str
) -> None:
    good = {"load_v1": _event("r").to_row(), DATAFUSION_PLAN_ARTIFACTS: _plan_artifact("r").to_row()}.get(
        name
    )
    with pytest.raises(ValueError, match=match):
        store.record_events(name, [good, row] if good else [row])  # type: ignore[list-item]
    assert store.pending_rows == 0  # the whole batch is refused


def test_buffer_flushes_past_flush_rows_and_on_exit(tmp_path: Path) -> None:
    with DeltaDiagnosticsStore(tmp_path, flush_rows=10) as small:
        emit(small, *[_event("r", i) for i in range(11)])
        assert small.pending_rows == 0
        assert len(small.read_events()) == 11
        emit(small, _event("r", 99))
        assert small.pending_rows == 1
    assert len(DeltaDiagnosticsStore(tmp_path).read_events("r")) == 12


# --- failure --------------------------------------------------------------------------------------------


@contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """Make a directory unwritable, also for root (immutable attribute); skip where impossible."""
    immutable = os.geteuid() == 0 and shutil.which("chattr") is not None
    if immutable:
        subprocess.run(["chattr", "+i", str(path)], check=False, capture_output=True)
    else:
        path.chmod(0o555)
    try:
        probe = path / "probe"
        try:
            probe.touch()
        except OSError:
            pass  # unwritable, as wanted
        else:
            probe.unlink()
            pytest.skip("cannot make a directory read-only here")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=False, capture_output=True)
        else:
            path.chmod(0o755)


def test_failed_flush_raises_and_leaves_the_table_readable(store: DeltaDiagnosticsStore) -> None:
    emit(store, *[_event("r1", i) for i in range(3)])
    store.flush()
    log = Path(store.table_uri(DIAGNOSTICS_EVENTS_TABLE)) / "_delta_log"
    emit(store, *[_event("r2", i) for i in range(4)])
    with _read_only(log):
        with pytest.raises(DiagnosticsError) as info:
            store.flush()
        assert DIAGNOSTICS_EVENTS_TABLE in str(info.value)
        assert store.table_uri(DIAGNOSTICS_EVENTS_TABLE) in str(info.value)
        # The data file was written but never committed: readers see the table as it was.
        fresh = DeltaDiagnosticsStore(store.root)
        assert len(fresh.read_events()) == 3
        assert fresh.read_events("r2") == []
        assert store.pending_rows == 4  # kept for the next flush
    store.flush()
    assert len(store.read_events("r2")) == 4
    assert len(store.read_events()) == 7


# --- concurrency ----------------------------------------------------------------------------------------

WRITERS = 8
EVENTS_PER_WRITER = 1_000


def _append_worker(root: str, worker: int) -> None:
    """One writer process: 1,000 events of its own run, flushed in several commits."""
    store = DeltaDiagnosticsStore(root, flush_rows=250)
    for start in range(0, EVENTS_PER_WRITER, 100):
        emit(store, *[_event(f"run-{worker}", i) for i in range(start, start + 100)])
    store.flush()


def test_concurrent_processes_append_exactly_once(tmp_path: Path) -> None:
    root = str(tmp_path / "_diagnostics")
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_append_worker, args=(root, n)) for n in range(WRITERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * WRITERS  # also catches an abort at exit

    store = DeltaDiagnosticsStore(root)
    events = store.read_events()
    assert len(events) == WRITERS * EVENTS_PER_WRITER
    assert len({e.event_id for e in events}) == WRITERS * EVENTS_PER_WRITER
    assert sorted(store.run_ids()) == sorted(f"run-{n}" for n in range(WRITERS))
    assert len(store.read_events("run-3")) == EVENTS_PER_WRITER
    # 4 appends per writer (3 at the flush threshold, 1 at the end), besides the creation. Writers that
    # race to create the table may leave a second CREATE TABLE commit (the loser's, retried by deltalake
    # at the next version; same schema and configuration): seen once in CI under load.
    operations = [c["operation"] for c in DeltaTable(store.table_uri(DIAGNOSTICS_EVENTS_TABLE)).history()]
    assert operations.count("WRITE") == WRITERS * 4
    assert set(operations) == {"WRITE", "CREATE TABLE"} and operations[-1] == "CREATE TABLE"


# --- reading one run without scanning history -----------------------------------------------------------


def test_reading_one_run_prunes_the_other_runs_files(store: DeltaDiagnosticsStore) -> None:
    run_ids = []
    for n in range(12):
        with tracked_run(label=f"run{n}", sink=store) as run:
            emit(store, *[_event(run.run_id, i) for i in range(5)])
        store.flush()  # one flush per run, as a build step does
        run_ids.append(run.run_id)
    target = run_ids[7]
    assert len(store.candidate_files(DIAGNOSTICS_EVENTS_TABLE)) == 12
    assert len(store.candidate_files(DIAGNOSTICS_EVENTS_TABLE, target)) == 1
    assert len(store.candidate_files(DATAFUSION_RUNS_TABLE, target)) == 1
    assert {e.run_id for e in store.read_events(target)} == {target}
    assert store.latest_run_id() == run_ids[-1]
    assert store.run_ids() == run_ids
    assert [row["run_id"] for row in store.read_runs()] == run_ids


def test_one_flush_of_several_runs_writes_one_commit_with_a_file_per_run(
    store: DeltaDiagnosticsStore,
) -> None:
    emit(store, *[_event(f"r{n}", i) for n in range(3) for i in range(4)])
    store.flush()
    table = DeltaTable(store.table_uri(DIAGNOSTICS_EVENTS_TABLE))
    assert table.version() == 1  # create + one append
    assert len(store.candidate_files(DIAGNOSTICS_EVENTS_TABLE)) == 3
    assert len(store.candidate_files(DIAGNOSTICS_EVENTS_TABLE, "r1")) == 1


def test_checkpoints_bound_log_replay(store: DeltaDiagnosticsStore) -> None:
    for n in range(CHECKPOINT_INTERVAL + 2):
        emit(store, _event(f"r{n}"))
        store.flush()
    log = Path(store.table_uri(DIAGNOSTICS_EVENTS_TABLE)) / "_delta_log"
    assert (log / "_last_checkpoint").exists()
    assert list(log.glob("*.checkpoint.parquet"))
    config = DeltaTable(store.table_uri(DIAGNOSTICS_EVENTS_TABLE)).metadata().configuration
    assert config["delta.appendOnly"] == "true"
    assert config["delta.checkpointInterval"] == str(CHECKPOINT_INTERVAL)


def test_compaction_keeps_runs_clustered(store: DeltaDiagnosticsStore) -> None:
    for n in range(6):
        emit(store, *[_event(f"run-{n}", i) for i in range(3)])
        store.flush()
    before = store.read_events("run-4")
    metrics = store.compact()
    assert metrics[DIAGNOSTICS_EVENTS_TABLE]["numFilesRemoved"] == 6
    assert len(store.candidate_files(DIAGNOSTICS_EVENTS_TABLE)) == 1
    assert store.read_events("run-4") == before
    assert len(store.read_events()) == 18
    assert sorted(store.run_ids()) == [f"run-{n}" for n in range(6)]


def test_tables_written_with_fewer_columns_gain_appended_ones(store: DeltaDiagnosticsStore) -> None:
    # A runs table as an older writer left it: only the seed's seven columns.
    seed = pa.schema(DATAFUSION_RUNS_V1.field(name) for name in DATAFUSION_RUNS_V1.names[:7])
    old_row = {"run_id": "old", "label": "v0", "start_time_unix_ms": 1, "status": "completed"}
    write_deltalake(store.table_uri(DATAFUSION_RUNS_TABLE), pa.Table.from_pylist([old_row], schema=seed))
    with store, tracked_run(label="new", sink=store) as run:
        pass
    rows = {row["run_id"]: row for row in store.read_runs()}
    assert rows["old"]["event_name"] is None  # appended column reads as null in old files
    assert rows[run.run_id]["event_name"] == DATAFUSION_RUN_FINISHED
    assert DeltaTable(store.table_uri(DATAFUSION_RUNS_TABLE)).schema().fields[-1].name == "event_name"


def test_a_process_that_writes_and_reads_exits_cleanly(tmp_path: Path) -> None:
    """FACTS #24: deltalake's pyarrow path aborts the interpreter at exit; the store must not take it."""
    script = (
        "import sys\n"
        "from codeanatomy_assets.diagnostics import DeltaDiagnosticsStore, tracked_run\n"
        "with DeltaDiagnosticsStore(sys.argv[1]) as store, tracked_run(label='x', sink=store) as run:\n"
        "    pass\n"
        "assert store.read_runs(run.run_id) and store.read_events() and store.run_ids()\n"
        "assert store.latest_run_id() == run.run_id\n"
        "store.compact()\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-2000:]
