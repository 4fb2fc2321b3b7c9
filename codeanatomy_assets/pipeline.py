"""The steps of a build as plain functions: extract, register a dataset, run a plan.

The Dagster assets in :mod:`codeanatomy_assets.defs` call these and only translate the outcomes into
metadata and check results; the CLI and the tests can call them directly.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import pyarrow as pa
from datafusion import SessionContext
from deltalake import DeltaTable

from codeanatomy_assets.cancel import CANCEL
from codeanatomy_assets.delta.layout import TableLayout, read_table_layout
from codeanatomy_assets.delta.layout.events import layout_events
from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.delta.pruned import open_snapshot, quote_ident
from codeanatomy_assets.delta.registration import register_dataset, register_for_plan
from codeanatomy_assets.delta.registration_errors import redact
from codeanatomy_assets.delta.registration_records import Registration
from codeanatomy_assets.delta.storage import is_object_store_uri
from codeanatomy_assets.diagnostics.event_names import (
    DATAFUSION_PLAN_PHASE,
    DATASET_SUMMARY,
    PLAN_CANCELLED,
    PLAN_LIMIT_EXCEEDED,
    PLAN_OUTPUT,
    PLAN_SKIPPED,
)
from codeanatomy_assets.diagnostics.sinks import emit
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.engine.drain import DrainLimits, PlanTimeoutError, ResultMemoryError
from codeanatomy_assets.engine.operator_spans import top_operators
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
from codeanatomy_assets.errors import DatasetError, PlanError, exception_text
from codeanatomy_assets.extract import ExtractResult
from codeanatomy_assets.extract.rebuild import ExtractTarget, RebuildOutcome, rebuild_extract
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.plan_skip import InputsFingerprint, PlanSkip, find_skip
from codeanatomy_assets.provider_decisions import decided_provider_modes, remember_decision
from codeanatomy_assets.result_write import write_result
from codeanatomy_assets.spec import PipelineSpec, PlanSpec
from codeanatomy_assets.step import StepDiagnostics


def _session(engine: EngineSettings) -> AbstractContextManager[SessionContext]:
    """The process's session for ``engine`` (:mod:`codeanatomy_assets.engine.session_pool`): its caches
    of Parquet footers and listings stay warm from one step to the next; keyed by the settings, so a
    session always has the memory pool and options its step asks for."""
    return step_session(engine, partial(new_session, engine))


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractOutcome:
    result: ExtractResult
    """The whole tree (see :class:`~codeanatomy_assets.extract.rebuild.RebuildOutcome`)."""
    uris: Mapping[str, str]
    seconds: float
    rebuild: RebuildOutcome | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetOutcome:
    registration: Registration
    uri: str
    row_count: int | None
    schema: pa.Schema | None
    layout: TableLayout | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanOutcome:
    execution: PlanExecution | None
    """The plan's run; ``None`` when it was skipped."""
    uri: str
    version: int
    """The output table's Delta version: the one written, or (skipped) the one it already had."""
    inputs: Mapping[str, RegisteredTable] = field(default_factory=dict)
    write_ms: float = 0.0
    skipped: PlanSkip | None = None
    """Why the plan was not run: its output holds the result of its SQL over its inputs' versions."""


def dataset_uri(spec: PipelineSpec, home: ProjectHome, name: str) -> tuple[str, Mapping[str, str]]:
    """Where dataset or plan ``name`` lives, with its storage options (the lake's, unless external)."""
    return spec.location(home, name)


# --- the extract step ---------------------------------------------------------------------------------


def run_extract(
    spec: PipelineSpec, home: ProjectHome, step: StepDiagnostics, *, progress: bool, full: bool = False
) -> ExtractOutcome:
    """Bring the four extract datasets up to the spec's source tree: only the changed files are parsed
    again unless ``full`` (or the lake's tables cannot be updated in place; ``extract_rebuild_v1`` says)."""
    assert spec.extract is not None, "run_extract needs a spec with [extract]"
    target = ExtractTarget(
        lake=home.lake, storage_options=home.storage_options, workers=spec.extract.workers, progress=progress
    )
    rebuilt = rebuild_extract(
        spec.extract.source_path(), target, run_id=step.run_id, sink=step.sink, full=full
    )
    return ExtractOutcome(result=rebuilt.summary, uris=rebuilt.uris, seconds=rebuilt.seconds, rebuild=rebuilt)


# --- the dataset step ---------------------------------------------------------------------------------


def run_dataset(
    spec: PipelineSpec,
    home: ProjectHome,
    step: StepDiagnostics,
    name: str,
    *,
    engine: EngineSettings | None = None,
) -> DatasetOutcome:
    """Register one dataset with probes (provider mode, log health, protocol compatibility); raises
    :class:`ProtocolIncompatibleError` when no provider reads the table correctly (after recording why)."""
    uri, options = dataset_uri(spec, home, name)
    with _session(engine or spec.engine) as ctx:
        registration = register_dataset(
            ctx, name=name, uri=uri, storage_options=options, run_id=step.run_id, sink=step.sink, probe=True
        )
        remember_decision(step.run_id, registration.registered)
        row_count, schema = _count_and_schema(ctx, name)
    _emit_dataset_summary(step, name, uri, options, registered=registration.registered, rows=row_count)
    layout = _record_layout(spec, step, name, uri, options, registration)
    return DatasetOutcome(
        registration=registration, uri=uri, row_count=row_count, schema=schema, layout=layout
    )


def _record_layout(  # noqa: PLR0917 - the dataset step's nouns, passed through once
    spec: PipelineSpec,
    step: StepDiagnostics,
    name: str,
    uri: str,
    options: Mapping[str, str],
    registration: Registration,
) -> TableLayout:
    """Read the dataset's layout (from the log health registration read) and record its events."""
    layout = read_table_layout(uri, options, health=registration.health, thresholds=spec.layout_thresholds)
    for event in layout_events(run_id=step.run_id, dataset=name, uri=uri, layout=layout):
        emit(
            step.sink, replace(event, asset_key=step.asset_key, trace_id=step.trace_id, span_id=step.span_id)
        )
    return layout


def _emit_dataset_summary(
    step: StepDiagnostics,
    name: str,
    uri: str,
    options: Mapping[str, str],
    *,
    registered: RegisteredTable,
    rows: int | None,
) -> None:
    """Record ``dataset_summary_v1``: the dataset's rows, live files, version and provider mode."""
    payload = {
        "rows": rows,
        **_live_files(uri, options, registered=registered),
        "version": registered.version,
        "uri": uri,
        "provider_mode": registered.provider_mode.value,
    }
    step.emit(
        name=DATASET_SUMMARY,
        severity=Severity.INFO,
        category=Category.DATASET,
        dataset=name,
        payload=payload,
    )


def _count_and_schema(ctx: SessionContext, name: str) -> tuple[int | None, pa.Schema | None]:
    try:
        df = ctx.table(quote_ident(name))  # registered quoted: the name as declared, not folded
        schema = df.schema()
        count = ctx.sql(f"SELECT count(*) AS n FROM {quote_ident(name)}").to_pydict()["n"][0]
    except Exception as exc:  # the registration already recorded whether reads work
        raise DatasetError(f"registered but not readable: {exc}", dataset=name) from exc
    return int(count), schema


# --- live files ---------------------------------------------------------------------------------------


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
        if table is None and registered is not None and _pinned_snapshot(registered):
            snapshot = open_snapshot(uri, version=registered.version, storage_options=options)
            return {"files": len(snapshot.files)}
        table = table or DeltaTable(uri, storage_options=dict(options) or None)
        return {"files": len(table.file_uris())}
    except Exception as exc:  # noqa: BLE001 - recorded in the event's payload; registration diagnoses the log itself
        return {"files": None, "files_error": exception_text(exc, limit=None)}


def _pinned_snapshot(registered: RegisteredTable) -> bool:
    """Whether the registration loaded a snapshot of a known version (its files are counted from it)."""
    return registered.provider_mode is ProviderMode.DELTA_PRUNED_PARQUET and registered.version is not None


# --- the plan step ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _PlanRun:
    """A plan run to its end in its step's session: the result, and its registered inputs."""

    execution: PlanExecution
    inputs: dict[str, RegisteredTable]
    registration_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class _WrittenResult:
    """A plan's result committed as a Delta table."""

    uri: str
    table: DeltaTable
    version: int
    storage_options: Mapping[str, str]
    write_ms: float

    def outcome(self, ran: _PlanRun) -> PlanOutcome:
        return PlanOutcome(
            execution=ran.execution,
            uri=self.uri,
            version=self.version,
            inputs=ran.inputs,
            write_ms=self.write_ms,
        )


def run_plan(
    spec: PipelineSpec,
    home: ProjectHome,
    step: StepDiagnostics,
    name: str,
    *,
    options: CompileOptions | None = None,
    engine: EngineSettings | None = None,
    full: bool = False,
) -> PlanOutcome:
    """Register the plan's inputs, run its SQL once with phase telemetry, write the result as Delta.

    Unless ``full``, a plan whose SQL and input versions equal those its output was written from is
    skipped (``plan_skipped_v1``, :mod:`codeanatomy_assets.plan_skip`); a result written records them.
    The plan runs within ``engine``'s memory limit and its ``timeout_s``; past either it fails with a
    ``plan_limit_exceeded_v1`` error saying which. A cancelled build stops it (``plan_cancelled_v1``).
    Either way nothing is written: the result is written only once the plan has run to its end.
    """
    plan = spec.plan(name)
    skip = None if full else find_skip(plan, partial(dataset_uri, spec, home))
    if skip is not None:
        return _skipped(home, step, name, skip)
    options = options or CompileOptions(run_id=step.run_id)
    engine = engine or spec.engine
    ran = _run_within_limits(spec, home, step, plan, options=options, engine=engine)
    fingerprint = InputsFingerprint.of(plan.sql, {n: t.version for n, t in ran.inputs.items()})
    written = _write_plan_result(home, step, name, ran.execution.table, fingerprint)
    payload = _output_payload(ran, written, engine)
    _emit_plan_event(step, name, PLAN_OUTPUT, Severity.INFO, payload=payload)
    return written.outcome(ran)


def _skipped(home: ProjectHome, step: StepDiagnostics, name: str, skip: PlanSkip) -> PlanOutcome:
    """Record ``plan_skipped_v1``: the plan was not run, and why; its output stays as it is."""
    _emit_plan_event(
        step,
        name,
        PLAN_SKIPPED,
        Severity.INFO,
        code="inputs_unchanged",
        message=f"plan {name} skipped: {skip.reason}",
        payload=skip.payload(),
    )
    return PlanOutcome(execution=None, uri=home.dataset_uri(name), version=skip.output_version, skipped=skip)


def _run_within_limits(
    spec: PipelineSpec,
    home: ProjectHome,
    step: StepDiagnostics,
    plan: PlanSpec,
    *,
    options: CompileOptions,
    engine: EngineSettings,
) -> _PlanRun:
    """Register the plan's inputs and run its SQL within ``engine``'s and its own limits; a limit it
    hits or a cancellation is recorded."""
    started = time.monotonic()
    deadline = started + plan.timeout_s if plan.timeout_s is not None else None
    limits = DrainLimits(deadline=deadline, timeout_s=plan.timeout_s, result_bytes=result_limit(engine))
    try:
        with _session(engine) as ctx:
            return _register_and_execute(
                ctx, spec, home, step, plan, options=options, engine=engine, limits=limits
            )
    except PlanError as exc:
        raise _limit_exceeded(step, plan.name, engine, limits, exc) from exc
    except BaseException as exc:
        if not isinstance(exc, Exception):  # an interrupt: the build was cancelled
            _record_cancelled(step, plan.name, exc, time.monotonic() - started)
        raise


def _register_and_execute(
    ctx: SessionContext,
    spec: PipelineSpec,
    home: ProjectHome,
    step: StepDiagnostics,
    plan: PlanSpec,
    *,
    options: CompileOptions,
    engine: EngineSettings,
    limits: DrainLimits,
) -> _PlanRun:
    """Register the plan's inputs in ``ctx`` (timed) and run its SQL there."""
    registering = time.perf_counter()
    inputs = register_inputs(ctx, spec, home, step, plan.inputs)
    registration_ms = (time.perf_counter() - registering) * 1000
    execution = execute_plan(
        ctx,
        name=plan.name,
        sql=plan.sql,
        options=options,
        sink=step.sink,
        tables=inputs,
        tracer=step.tracer,
        target_partitions=engine.target_partitions,
        limits=limits,
    )
    return _PlanRun(execution=execution, inputs=inputs, registration_ms=registration_ms)


def _write_plan_result(
    home: ProjectHome, step: StepDiagnostics, name: str, table: pa.Table, fingerprint: InputsFingerprint
) -> _WrittenResult:
    """Write the plan's result to the lake, its commit recording ``fingerprint``; a failed write is
    recorded and raised as a ``PlanError``."""
    uri, storage = home.dataset_uri(name), dict(home.storage_options) or None
    started = time.perf_counter()
    try:
        write_result(uri, table, storage, commit_metadata=fingerprint.commit_metadata(step.run_id))
        written = DeltaTable(uri, storage_options=storage)
        version = written.version()
    except Exception as exc:
        raise _write_failed(
            step, name, redact(f"writing the result to {uri} failed: {exc}", storage), exc
        ) from exc
    write_ms = (time.perf_counter() - started) * 1000
    return _WrittenResult(
        uri=uri, table=written, version=version, storage_options=storage or {}, write_ms=write_ms
    )


def _write_failed(step: StepDiagnostics, name: str, error: str, exc: Exception) -> PlanError:
    """The error of a failed write of the plan's result, recorded as its ``write`` phase's error."""
    _emit_plan_event(
        step,
        name,
        DATAFUSION_PLAN_PHASE,
        Severity.ERROR,
        code="write_failed",
        message=f"plan {name!r}: {error}",
        payload={"phase": "write", "error.type": type(exc).__name__},
    )
    return PlanError(error, plan=name, phase="write")


def _output_payload(ran: _PlanRun, written: _WrittenResult, engine: EngineSettings) -> dict[str, Any]:
    """The payload of ``plan_output_v1``: the result's size and files, the step's times and memory."""
    execution = ran.execution
    return {
        "rows": execution.table.num_rows,
        **_live_files(written.uri, written.storage_options, table=written.table),
        "version": written.version,
        "uri": written.uri,
        "write_ms": round(written.write_ms, 3),
        "inputs_registration_ms": round(ran.registration_ms, 3),
        "inputs": {name: table.version for name, table in ran.inputs.items()},
        **(execution.memory.to_row() if execution.memory is not None else {}),
        "memory_limit_bytes": engine.resolved_memory_limit(),
        "top_operators": top_operators(execution.operator_metrics),
    }


def _emit_plan_event(step: StepDiagnostics, plan: str, name: str, severity: Severity, **fields: Any) -> None:
    """Record event ``name`` of plan ``plan`` (category ``plan_phase``)."""
    step.emit(name=name, severity=severity, category=Category.PLAN_PHASE, plan=plan, **fields)


@dataclass(frozen=True, slots=True)
class _LimitHit:
    """The limit a plan hit: its ``plan_limit_exceeded_v1`` code, message and payload."""

    code: str
    message: str
    payload: dict[str, object]


def _limit_exceeded(
    step: StepDiagnostics, name: str, engine: EngineSettings, limits: DrainLimits, error: PlanError
) -> PlanError:
    """``error``, or the clear error of the limit the plan hit (recorded as ``plan_limit_exceeded_v1``)."""
    hit = _limit_hit(name, engine, limits, error)
    if hit is None:
        return error
    _emit_plan_event(
        step,
        name,
        PLAN_LIMIT_EXCEEDED,
        Severity.ERROR,
        code=hit.code,
        message=hit.message,
        payload={"phase": error.phase, **hit.payload, "error": str(error)},
    )
    return PlanError(hit.message.removeprefix(f"plan {name} "), plan=name, phase=error.phase)


def _limit_hit(name: str, engine: EngineSettings, limits: DrainLimits, error: PlanError) -> _LimitHit | None:
    """Which limit ``error`` comes from: the memory limit, the plan's timeout, or neither (``None``)."""
    if memory_exhausted(error):
        limit = engine.resolved_memory_limit()
        held_by = "result" if _caused_by(error, ResultMemoryError) else "operators"
        return _LimitHit(
            "memory_limit_exceeded",
            f"plan {name} needs more than {format_size(limit)} of memory; "
            "raise [engine] memory_limit or --memory-limit",
            {"memory_limit_bytes": limit, "exhausted_by": held_by},
        )
    if _caused_by(error, PlanTimeoutError):
        return _LimitHit(
            "timeout",
            f"plan {name} ran longer than its timeout_s ({limits.timeout_s:g} s) and was stopped; "
            f"raise [plans.{name}] timeout_s",
            {"timeout_s": limits.timeout_s},
        )
    return None


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, kind):
        seen = seen.__cause__
    return seen is not None


def _record_cancelled(step: StepDiagnostics, name: str, interrupt: BaseException, seconds: float) -> None:
    # Dagster's handler raises the interrupt at once; the watcher that names the signal runs a moment later.
    reason = CANCEL.reason if CANCEL.wait(0.25) else type(interrupt).__name__
    _emit_plan_event(
        step,
        name,
        PLAN_CANCELLED,
        Severity.WARN,
        code="cancelled",
        message=f"plan {name} was cancelled ({reason}) after {seconds:.1f} s; nothing was written",
        payload={"reason": reason, "seconds": round(seconds, 3)},
    )


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
    return {name: _register_input(ctx, spec, home, step, name, decided=decided.get(name)) for name in names}


def _register_input(
    ctx: SessionContext,
    spec: PipelineSpec,
    home: ProjectHome,
    step: StepDiagnostics,
    name: str,
    *,
    decided: RegisteredTable | None,
) -> RegisteredTable:
    """Register input ``name`` by its dataset step's decision, else anew (probed on an object store)."""
    uri, options = dataset_uri(spec, home, name)
    if decided is not None and decided.provider_mode is not ProviderMode.NONE:
        known = replace(decided, uri=uri, storage_options=dict(options))
        register_for_plan(ctx, known)
        return known
    registration = register_dataset(
        ctx,
        name=name,
        uri=uri,
        storage_options=options,
        run_id=step.run_id,
        sink=step.sink,
        probe=is_object_store_uri(uri),
    )
    return registration.registered
