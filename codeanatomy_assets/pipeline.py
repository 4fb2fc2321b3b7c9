"""The steps of a build as plain functions: extract, register a dataset, run a plan.

The Dagster assets in :mod:`codeanatomy_assets.defs` call these and only translate the outcomes into
metadata and check results; the CLI and the tests can call them directly.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Final

import pyarrow as pa
from datafusion import SessionContext
from deltalake import DeltaTable, write_deltalake

from codeanatomy_assets.cancel import CANCEL
from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.delta.pruned import open_snapshot, quote_ident
from codeanatomy_assets.delta.registration import register_dataset, register_for_plan
from codeanatomy_assets.delta.registration_errors import redact
from codeanatomy_assets.delta.registration_records import Registration
from codeanatomy_assets.delta.storage import is_object_store_uri, local_table_path
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.engine.drain import DrainLimits, PlanTimeoutError, ResultMemoryError
from codeanatomy_assets.engine.options import CompileOptions
from codeanatomy_assets.engine.plan import PlanExecution, execute_plan
from codeanatomy_assets.engine.session import (
    EngineSettings,
    format_size,
    memory_exhausted,
    new_session,
    result_limit,
)
from codeanatomy_assets.engine.session_pool import step_session
from codeanatomy_assets.errors import DatasetError, PlanError
from codeanatomy_assets.extract import ExtractResult, extract_tree, write_datasets
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.spec import PipelineSpec
from codeanatomy_assets.step import StepDiagnostics

PROVIDER_MODE_EVENT = "dataset_provider_mode_v1"
PLAN_LIMIT_EVENT: Final = "plan_limit_exceeded_v1"
PLAN_CANCELLED_EVENT: Final = "plan_cancelled_v1"


def _session(engine: EngineSettings) -> AbstractContextManager[SessionContext]:
    """The process's session for ``engine`` (:mod:`codeanatomy_assets.engine.session_pool`): its caches
    of Parquet footers and listings stay warm from one step to the next; keyed by the settings, so a
    session always has the memory pool and options its step asks for."""
    return step_session(engine, partial(new_session, engine))


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractOutcome:
    result: ExtractResult
    uris: Mapping[str, str]
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetOutcome:
    registration: Registration
    uri: str
    row_count: int | None
    schema: pa.Schema | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanOutcome:
    execution: PlanExecution
    uri: str
    version: int
    inputs: Mapping[str, RegisteredTable] = field(default_factory=dict)
    write_ms: float = 0.0


def dataset_uri(spec: PipelineSpec, home: ProjectHome, name: str) -> tuple[str, Mapping[str, str]]:
    """Where dataset or plan ``name`` lives, with its storage options (the lake's, unless external)."""
    for dataset in spec.datasets:
        if dataset.name == name and dataset.uri is not None:
            return dataset.uri, dataset.storage_options
    return home.dataset_uri(name), home.storage_options


def run_extract(
    spec: PipelineSpec, home: ProjectHome, step: StepDiagnostics, *, progress: bool
) -> ExtractOutcome:
    """Analyse the spec's source tree and write the four extract datasets (one atomic commit each)."""
    assert spec.extract is not None, "run_extract needs a spec with [extract]"
    started = time.perf_counter()
    result = extract_tree(
        spec.extract.source_path(),
        run_id=step.run_id,
        sink=step.sink,
        workers=spec.extract.workers,
        progress=progress,
    )
    uris = write_datasets(result, home.lake, storage_options=home.storage_options)
    return ExtractOutcome(result=result, uris=uris, seconds=time.perf_counter() - started)


def run_dataset(
    spec: PipelineSpec,
    home: ProjectHome,
    step: StepDiagnostics,
    name: str,
    *,
    engine: EngineSettings | None = None,
) -> DatasetOutcome:
    """Register one dataset with probes: provider mode, log health and protocol compatibility.

    Raises :class:`ProtocolIncompatibleError` when no provider reads the table correctly (after recording
    why).
    """
    uri, options = dataset_uri(spec, home, name)
    with _session(engine or spec.engine) as ctx:
        registration = register_dataset(
            ctx, name=name, uri=uri, storage_options=options, run_id=step.run_id, sink=step.sink, probe=True
        )
        remember_decision(step.run_id, registration.registered)
        row_count, schema = _count_and_schema(ctx, name)
    step.emit(
        name="dataset_summary_v1",
        severity=Severity.INFO,
        category=Category.DATASET,
        dataset=name,
        payload={
            "rows": row_count,
            **_live_files(uri, options, registered=registration.registered),
            "version": registration.registered.version,
            "uri": uri,
            "provider_mode": registration.registered.provider_mode.value,
        },
    )
    return DatasetOutcome(registration=registration, uri=uri, row_count=row_count, schema=schema)


def run_plan(
    spec: PipelineSpec,
    home: ProjectHome,
    step: StepDiagnostics,
    name: str,
    *,
    options: CompileOptions | None = None,
    engine: EngineSettings | None = None,
) -> PlanOutcome:
    """Register the plan's inputs, run its SQL once with phase telemetry, write the result as Delta.

    The plan runs within ``engine``'s memory limit and its ``timeout_s``; past either it fails with a
    ``plan_limit_exceeded_v1`` error saying which. A cancelled build stops it (``plan_cancelled_v1``).
    Either way nothing is written: the result is written only once the plan has run to its end.
    """
    plan = spec.plan(name)
    options = options or CompileOptions(run_id=step.run_id)
    engine = engine or spec.engine
    started = time.monotonic()
    limits = DrainLimits(
        deadline=started + plan.timeout_s if plan.timeout_s is not None else None,
        timeout_s=plan.timeout_s,
        result_bytes=result_limit(engine),
    )
    try:
        with _session(engine) as ctx:
            registering = time.perf_counter()
            inputs = register_inputs(ctx, spec, home, step, plan.inputs)
            registration_ms = (time.perf_counter() - registering) * 1000
            execution = execute_plan(
                ctx,
                name=name,
                sql=plan.sql,
                options=options,
                sink=step.sink,
                tables=inputs,
                tracer=step.tracer,
                target_partitions=engine.target_partitions,
                limits=limits,
            )
    except PlanError as exc:
        raise _limit_exceeded(step, name, engine, limits, exc) from exc
    except BaseException as exc:
        if not isinstance(exc, Exception):  # an interrupt: the build was cancelled
            _record_cancelled(step, name, exc, time.monotonic() - started)
        raise
    uri, storage = home.dataset_uri(name), dict(home.storage_options) or None
    started = time.perf_counter()
    try:
        write_result(uri, execution.table, storage)
        written = DeltaTable(uri, storage_options=storage)
        version = written.version()
    except Exception as exc:
        error = redact(f"writing the result to {uri} failed: {exc}", storage)
        step.emit(
            name="datafusion_plan_phase_v1",
            severity=Severity.ERROR,
            category=Category.PLAN_PHASE,
            plan=name,
            code="write_failed",
            message=f"plan {name!r}: {error}",
            payload={"phase": "write", "error.type": type(exc).__name__},
        )
        raise PlanError(error, plan=name, phase="write") from exc
    write_ms = (time.perf_counter() - started) * 1000
    step.emit(
        name="plan_output_v1",
        severity=Severity.INFO,
        category=Category.PLAN_PHASE,
        plan=name,
        payload={
            "rows": execution.table.num_rows,
            **_live_files(uri, storage or {}, table=written),
            "version": version,
            "uri": uri,
            "write_ms": round(write_ms, 3),
            "inputs_registration_ms": round(registration_ms, 3),
            **(execution.memory.to_row() if execution.memory is not None else {}),
            "memory_limit_bytes": engine.resolved_memory_limit(),
        },
    )
    return PlanOutcome(execution=execution, uri=uri, version=version, inputs=inputs, write_ms=write_ms)


def _limit_exceeded(
    step: StepDiagnostics, name: str, engine: EngineSettings, limits: DrainLimits, error: PlanError
) -> PlanError:
    """``error``, or the clear error of the limit the plan hit (recorded as ``plan_limit_exceeded_v1``)."""
    if memory_exhausted(error):
        limit = engine.resolved_memory_limit()
        message = (
            f"plan {name} needs more than {format_size(limit)} of memory; "
            "raise [engine] memory_limit or --memory-limit"
        )
        held_by = "result" if _caused_by(error, ResultMemoryError) else "operators"
        code, payload = "memory_limit_exceeded", {"memory_limit_bytes": limit, "exhausted_by": held_by}
    elif _caused_by(error, PlanTimeoutError):
        message = (
            f"plan {name} ran longer than its timeout_s ({limits.timeout_s:g} s) and was stopped; "
            f"raise [plans.{name}] timeout_s"
        )
        code, payload = "timeout", {"timeout_s": limits.timeout_s}
    else:
        return error
    step.emit(
        name=PLAN_LIMIT_EVENT,
        severity=Severity.ERROR,
        category=Category.PLAN_PHASE,
        plan=name,
        code=code,
        message=message,
        payload={"phase": error.phase, **payload, "error": str(error)},
    )
    return PlanError(message.removeprefix(f"plan {name} "), plan=name, phase=error.phase)


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, kind):
        seen = seen.__cause__
    return seen is not None


def _record_cancelled(step: StepDiagnostics, name: str, interrupt: BaseException, seconds: float) -> None:
    # Dagster's handler raises the interrupt at once; the watcher that names the signal runs a moment later.
    reason = CANCEL.reason if CANCEL.wait(0.25) else type(interrupt).__name__
    step.emit(
        name=PLAN_CANCELLED_EVENT,
        severity=Severity.WARN,
        category=Category.PLAN_PHASE,
        plan=name,
        code="cancelled",
        message=f"plan {name} was cancelled ({reason}) after {seconds:.1f} s; nothing was written",
        payload={"reason": reason, "seconds": round(seconds, 3)},
    )


def write_result(uri: str, table: pa.Table, storage_options: Mapping[str, str] | None) -> None:
    """Overwrite the Delta table at ``uri`` with ``table`` (normalized for Delta), or leave it as it was.

    A local folder that a failed (or interrupted) write created is removed; one that existed keeps its
    files: what the failed write added (data files never committed) is removed again. On an object store
    an uncommitted write leaves at most unreferenced data files, which no reader sees. A panic of
    deltalake's Rust code (a ``BaseException``) is raised as a ``RuntimeError`` saying so.
    """
    local = None if is_object_store_uri(uri) else local_table_path(uri)
    before = _folder_entries(local) if local is not None else None
    try:
        write_deltalake(
            uri,
            normalize_for_delta(table),
            mode="overwrite",
            schema_mode="overwrite",
            storage_options=dict(storage_options) if storage_options else None,
        )
    except BaseException as exc:
        if local is not None:
            _undo_failed_write(local, before)
        if type(exc).__name__ == "PanicException":  # pyo3's, not an Exception: a step would not catch it
            known = ""
            if local is not None and ("[" in local or "]" in local):
                known = " (known: deltalake 1.6.6 cannot write to a local path holding '[' or ']')"
            raise RuntimeError(f"deltalake panicked: {exc}{known}") from exc
        raise


_COMMIT_RE: Final = re.compile(r"^_delta_log/\d{20}\.json$")


def _folder_entries(path: str) -> set[str] | None:
    """The files and folders under ``path`` (relative, ``/``-separated); ``None`` when it does not exist."""
    if not os.path.lexists(path):
        return None
    entries: set[str] = set()
    for folder, dirs, files in os.walk(path):
        relative = os.path.relpath(folder, path)
        prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        entries.update(prefix + name for name in (*dirs, *files))
    return entries


def _undo_failed_write(path: str, before: set[str] | None) -> None:
    """Remove what a failed write added under ``path`` (the folder, if it is new), unless it committed."""
    after = _folder_entries(path) or set()
    added = after - (before or set())
    if any(_COMMIT_RE.match(entry) for entry in added):
        return  # a version was committed after all: it is the table's, not debris
    if before is None:
        shutil.rmtree(path, ignore_errors=True)
        return
    for entry in sorted(added, key=lambda e: e.count("/"), reverse=True):  # deepest first
        full = os.path.join(path, *entry.split("/"))
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(full)


def register_inputs(
    ctx: SessionContext,
    spec: PipelineSpec,
    home: ProjectHome,
    step: StepDiagnostics,
    names: tuple[str, ...],
) -> dict[str, RegisteredTable]:
    """Register each input by the provider mode its dataset asset chose in this run.

    The choice is read back from the durable store (the dataset step may have run in another process);
    an input without a recorded choice (a plan output, or a plan materialized alone) is registered anew,
    which records its own provider-mode diagnostics. Such an input on an object store is probed: the Delta
    table provider registers there but cannot read (it ignores the session's object stores), so only a
    probe makes the policy fall back.
    """
    declared = {d.name for d in spec.datasets}  # plan outputs have no dataset step: registered below
    decided = decided_provider_modes(home, step.run_id, tuple(n for n in names if n in declared))
    tables: dict[str, RegisteredTable] = {}
    for input_name in names:
        uri, options = dataset_uri(spec, home, input_name)
        known = decided.get(input_name)
        if known is not None and known.provider_mode is not ProviderMode.NONE:
            known = replace(known, uri=uri, storage_options=dict(options))
            register_for_plan(ctx, known)
            tables[input_name] = known
            continue
        registration = register_dataset(
            ctx,
            name=input_name,
            uri=uri,
            storage_options=options,
            run_id=step.run_id,
            sink=step.sink,
            probe=is_object_store_uri(uri),
        )
        tables[input_name] = registration.registered
    return tables


_DECIDED: dict[str, dict[str, RegisteredTable]] = {}
"""The provider modes dataset steps of this process decided, for the latest run only."""


def remember_decision(run_id: str, registered: RegisteredTable) -> None:
    """Keep a dataset step's decision in this process, so its plans need not read it back from the store."""
    if run_id not in _DECIDED:
        _DECIDED.clear()  # one run at a time per process: the decisions of earlier runs are never asked
        _DECIDED[run_id] = {}
    _DECIDED[run_id][registered.dataset] = registered


def decided_provider_modes(
    home: ProjectHome, run_id: str, names: tuple[str, ...]
) -> dict[str, RegisteredTable]:
    """The decisions of ``run_id``'s dataset steps for ``names``: from this process when its steps decided
    all of them (the in-process executor), else read back from the store (a step in another process)."""
    known = _DECIDED.get(run_id, {})
    if all(name in known for name in names):
        return {name: known[name] for name in names}
    return recorded_provider_modes(home, run_id)


def recorded_provider_modes(home: ProjectHome, run_id: str) -> dict[str, RegisteredTable]:
    """The provider modes chosen by dataset steps of ``run_id``, from the store (latest per dataset)."""
    store = home.diagnostics_store()
    chosen: dict[str, RegisteredTable] = {}
    for event in store.read_events(run_id, names=[PROVIDER_MODE_EVENT]):
        payload = event.payload
        if event.dataset is None or not payload.get("provider_mode"):
            continue
        chosen[event.dataset] = RegisteredTable(
            dataset=event.dataset,
            uri=str(payload.get("uri", "")),
            provider_mode=ProviderMode(payload["provider_mode"]),
            provider_class=str(payload.get("provider_class", "")),
            protocol_compatible=bool(payload.get("protocol_compatible", True)),
            version=payload.get("version"),
            fallback_reason=payload.get("fallback_reason"),
        )
    return chosen


def _live_files(
    uri: str,
    options: Mapping[str, str],
    *,
    table: DeltaTable | None = None,
    registered: RegisteredTable | None = None,
) -> dict[str, object]:
    """``{"files": n}``, or ``{"files": None, "files_error": ...}``: a failed count is said, not hidden.

    Counted from ``table`` when the caller has it open, from the pinned snapshot a ``delta_pruned_parquet``
    registration loaded, else by opening the table.
    """
    try:
        if (
            table is None
            and registered is not None
            and registered.provider_mode is ProviderMode.DELTA_PRUNED_PARQUET
            and registered.version is not None
        ):
            snapshot = open_snapshot(uri, version=registered.version, storage_options=options)
            return {"files": len(snapshot.files)}
        table = table or DeltaTable(uri, storage_options=dict(options) or None)
        return {"files": len(table.file_uris())}
    except Exception as exc:  # noqa: BLE001 - recorded in the event's payload; registration diagnoses the log itself
        return {"files": None, "files_error": f"{type(exc).__name__}: {exc}"}


def _count_and_schema(ctx: SessionContext, name: str) -> tuple[int | None, pa.Schema | None]:
    try:
        df = ctx.table(quote_ident(name))  # registered quoted: the name as declared, not folded
        schema = df.schema()
        count = ctx.sql(f"SELECT count(*) AS n FROM {quote_ident(name)}").to_pydict()["n"][0]
    except Exception as exc:  # the registration already recorded whether reads work
        raise DatasetError(f"registered but not readable: {exc}", dataset=name) from exc
    return int(count), schema


def normalize_for_delta(table: pa.Table) -> pa.Table:
    """``table`` with a schema Delta stores, at every nesting level.

    - no field metadata (a column read from a column-mapped table carries ``delta.columnMapping.*``, and
      deltalake refuses to create a table from such fields; Parquet field ids alike);
    - view, large and dictionary types as their plain types; fixed-size and view lists as lists;
      unsigned integers as ``int64``; ``float16`` as ``float32``; ``date64`` as ``date32``;
      ``decimal256`` as ``decimal128`` (precision over 38: as text);
    - types Delta has no counterpart for: times of day as text (``HH:MM:SS`` and the fraction of their
      unit), durations as ``int64`` microseconds, intervals as
      ``struct<months: int32, days: int32, nanoseconds: int64>``.

    Raises ``pyarrow.ArrowInvalid`` when a value does not fit (an unsigned integer above ``int64``).
    """
    target = pa.schema([_delta_field(f) for f in table.schema])
    if table.schema.equals(target, check_metadata=True):
        return table
    columns = [
        _delta_column(table.column(index), source.type, field.type)
        for index, (source, field) in enumerate(zip(table.schema, target, strict=True))
    ]
    return pa.Table.from_arrays(columns, schema=target)


def _delta_field(source: pa.Field) -> pa.Field:
    nullable = source.nullable or pa.types.is_null(source.type)
    return pa.field(source.name, _delta_type(source.type), nullable)


def _delta_type(dtype: pa.DataType) -> pa.DataType:
    """The Delta-storable type for ``dtype``, nested fields rebuilt without metadata."""
    if pa.types.is_dictionary(dtype):
        return _delta_type(dtype.value_type)
    if pa.types.is_string_view(dtype) or pa.types.is_large_string(dtype):
        return pa.string()
    if (
        pa.types.is_binary_view(dtype)
        or pa.types.is_large_binary(dtype)
        or pa.types.is_fixed_size_binary(dtype)
    ):
        return pa.binary()
    if pa.types.is_unsigned_integer(dtype):
        return pa.int64()
    if pa.types.is_float16(dtype):
        return pa.float32()
    if pa.types.is_date64(dtype):
        return pa.date32()
    if pa.types.is_decimal256(dtype):
        return pa.decimal128(dtype.precision, dtype.scale) if dtype.precision <= 38 else pa.string()
    if pa.types.is_time(dtype):
        return pa.string()
    if pa.types.is_duration(dtype):
        return pa.int64()
    if pa.types.is_interval(dtype):
        return _INTERVAL
    if isinstance(dtype, _LIST_TYPES):
        return pa.list_(_delta_field(dtype.value_field))
    if pa.types.is_map(dtype):
        key, item = _delta_field(dtype.key_field), _delta_field(dtype.item_field)
        # pyarrow-stubs types map_'s key and item as DataType only; pyarrow takes Fields (names, nullability).
        return pa.map_(key, item, dtype.keys_sorted)  # pyright: ignore[reportArgumentType]
    if pa.types.is_struct(dtype):
        return pa.struct([_delta_field(dtype.field(i)) for i in range(dtype.num_fields)])
    return dtype


_INTERVAL: Final = pa.struct(
    [pa.field("months", pa.int32()), pa.field("days", pa.int32()), pa.field("nanoseconds", pa.int64())]
)


_LIST_TYPES: Final = (
    pa.ListType,
    pa.LargeListType,
    pa.FixedSizeListType,
    pa.ListViewType,
    pa.LargeListViewType,
)


def _contains(dtype: pa.DataType, predicate: Callable[[pa.DataType], bool]) -> bool:
    if predicate(dtype):
        return True
    if pa.types.is_dictionary(dtype):
        return _contains(dtype.value_type, predicate)
    return any(_contains(dtype.field(i).type, predicate) for i in range(dtype.num_fields))


def _microsecond_durations(dtype: pa.DataType) -> pa.DataType:
    """``dtype`` with every duration in microseconds (the unit Delta's timestamps use)."""
    if pa.types.is_duration(dtype):
        return pa.duration("us")
    if isinstance(dtype, _LIST_TYPES):  # the same kind of list: pyarrow 26 casts list views to invalid lists
        return _same_list(dtype, dtype.value_field.with_type(_microsecond_durations(dtype.value_type)))
    if pa.types.is_map(dtype):
        key, item = dtype.key_field, dtype.item_field
        key = key.with_type(_microsecond_durations(key.type))
        item = item.with_type(_microsecond_durations(item.type))
        return pa.map_(key, item)  # pyright: ignore[reportArgumentType] - Fields, as above
    if pa.types.is_struct(dtype):
        return pa.struct([f.with_type(_microsecond_durations(f.type)) for f in dtype])
    return dtype


def _same_list(dtype: pa.DataType, value_field: pa.Field) -> pa.DataType:
    if pa.types.is_list_view(dtype):
        return pa.list_view(value_field)
    if pa.types.is_large_list_view(dtype):
        return pa.large_list_view(value_field)
    if pa.types.is_large_list(dtype):
        return pa.large_list(value_field)
    if pa.types.is_fixed_size_list(dtype):
        return pa.list_(value_field, dtype.list_size)
    return pa.list_(value_field)


def _rebuilt_by_value(dtype: pa.DataType) -> bool:
    """Types pyarrow cannot cast to their Delta type: intervals (no cast), list views (pyarrow 26 casts
    them to lists whose offsets are invalid, without an error)."""
    return pa.types.is_interval(dtype) or pa.types.is_list_view(dtype) or pa.types.is_large_list_view(dtype)


def _delta_column(column: pa.ChunkedArray, source: pa.DataType, target: pa.DataType) -> pa.ChunkedArray:
    if _contains(source, pa.types.is_duration):
        # Sub-microsecond parts are truncated, as deltalake truncates nanosecond timestamps.
        column = column.cast(_microsecond_durations(source), safe=False)
    if _contains(source, _rebuilt_by_value):
        chunks = [pa.array(_delta_value(c.to_pylist()), type=target) for c in column.chunks]
        # pyarrow-stubs has no overload for a DataType object as `type` (only names and literal types).
        return pa.chunked_array(chunks, type=target)  # pyright: ignore[reportCallIssue, reportArgumentType]
    return column.cast(target)


def _delta_value(value: Any) -> Any:
    """A Python value of an Arrow array as the Delta-storable type of :func:`_delta_type` takes it."""
    if isinstance(value, pa.MonthDayNano):
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    if isinstance(value, datetime.timedelta):
        return value // datetime.timedelta(microseconds=1)
    if isinstance(value, datetime.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _delta_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_delta_value(v) for v in value)
    return value
