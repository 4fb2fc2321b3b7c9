"""Plan phases, fingerprints and plan artifacts: one SQL plan run once, with diagnostics.

:func:`execute_plan` runs a query through four phases, each timed inside its own OpenTelemetry span
(a child of the caller's current span) and recorded as a ``datafusion_plan_phase_v1`` event:

``logical``
    ``ctx.sql(sql)``: parse and build the logical plan; unknown tables and columns fail here. Tables
    served by ``delta_pruned_parquet`` are bound first: re-registered over the files Delta's log keeps
    for the plan's predicates (:func:`~codeanatomy_assets.engine.pruning.bind_pruned_tables`), so every
    later phase plans and reads only those; they are registered whole again when the plan is done.
``optimized``
    ``DataFrame.optimized_logical_plan()``: the optimizer; constant folding errors surface here.
``physical``
    ``DataFrame.execution_plan()``: analysis, optimization and physical planning (the Delta provider
    lists its files here).
``execute``
    ``ctx.execute(plan, i)`` for every output partition of *that* physical plan, once, the
    partitions drained concurrently (one thread per core at most); the batches become the result table
    in partition order, and afterwards the same plan holds every operator's metrics.

Nothing is executed twice: ``EXPLAIN ANALYZE``-like text and per-operator metrics are read from the one
execution, Substrait, unparsed SQL, graphviz and the ``EXPLAIN`` text come from plans already built.

With :meth:`CompileOptions.off` a plan does only its real work: the ``logical``, ``physical`` and
``execute`` phases (physical planning runs the optimizer itself, so a separate ``optimized`` pass is
capture work and is skipped), each still recorded with its duration and span ids, and nothing else:
no plan hashes, no metrics, no scan units, no artifacts. That is the baseline of the overhead benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from datafusion import SessionContext
from datafusion.dataframe import DataFrame
from datafusion.plan import ExecutionPlan, LogicalPlan
from opentelemetry import trace
from opentelemetry.trace import Tracer

from codeanatomy_assets.delta.provider import RegisteredTable
from codeanatomy_assets.diagnostics.event_names import SCAN_UNIT_ANALYSIS_FAILED
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.sinks import DiagnosticsSink, emit
from codeanatomy_assets.diagnostics.taxonomy import Category
from codeanatomy_assets.engine.artifacts import capture_plan, plan_artifacts, send_artifacts
from codeanatomy_assets.engine.drain import DrainLimits, buffer_bytes, drain_partitions
from codeanatomy_assets.engine.failures import side_step_failed
from codeanatomy_assets.engine.memory import PlanMemory, plan_memory
from codeanatomy_assets.engine.metrics import OperatorSnapshot, read_plan
from codeanatomy_assets.engine.operator_spans import emit_operator_spans
from codeanatomy_assets.engine.operators import (
    JoinOperator,
    OperatorMetrics,
    operator_metrics,
    physical_joins,
)
from codeanatomy_assets.engine.options import CompileOptions
from codeanatomy_assets.engine.phases import PhaseLog, PhaseRecord, PlanPhase
from codeanatomy_assets.engine.pruning import (
    PrunedBinding,
    TablePruning,
    bind_pruned_tables,
    restore_pruned_tables,
)
from codeanatomy_assets.engine.scan import ScanUnit, collect_scan_units
from codeanatomy_assets.engine.scan_metrics import FILE_METRICS
from codeanatomy_assets.errors import PlanError


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanExecution:
    """The result of :func:`execute_plan`."""

    name: str
    table: pa.Table
    phases: tuple[PhaseRecord, ...]
    plan_hashes: Mapping[str, str]
    partition_count: int
    join_operators: tuple[JoinOperator, ...]
    scan_units: tuple[ScanUnit, ...]
    operator_metrics: tuple[OperatorMetrics, ...]
    artifacts: Mapping[str, Any] | None
    trace_id: str | None
    delta_pruning: tuple[TablePruning, ...] = ()
    """What plan-time file pruning bound, per ``delta_pruned_parquet`` table the plan scans."""
    memory: PlanMemory | None = None
    """Peak operator memory, spills and result size (``None`` when metrics are not collected)."""

    def phase(self, phase: PlanPhase | str) -> PhaseRecord:
        """The record of one phase (``KeyError`` if it did not run)."""
        for record in self.phases:
            if record.phase == phase:
                return record
        raise KeyError(phase)


# --------------------------------------------------------------------------------------------- running


@dataclass(slots=True)
class _PlanRun:
    """The mutable state of one :func:`execute_plan` call."""

    ctx: SessionContext
    log: PhaseLog
    limits: DrainLimits = field(default_factory=DrainLimits)
    df: DataFrame | None = None
    logical: LogicalPlan | None = None
    optimized: LogicalPlan | None = None
    physical: ExecutionPlan | None = None
    metrics: tuple[OperatorMetrics, ...] = ()
    executed: OperatorSnapshot | None = None
    """The executed plan's metrics, read once (operator metrics and scan units share them)."""
    binding: PrunedBinding = field(default_factory=PrunedBinding)
    result_bytes: int | None = None

    @property
    def options(self) -> CompileOptions:
        return self.log.options

    def plan_logical(self) -> DataFrame:
        """The logical phase's work: bind ``delta_pruned_parquet`` tables to their files, then plan."""
        self.binding = bind_pruned_tables(self.ctx, self.log.sql, self.log.tables)
        return self.ctx.sql(self.log.sql)

    def restore(self) -> None:
        """Register the tables :meth:`plan_logical` bound over every live file again."""
        restore_pruned_tables(self.ctx, self.binding.tables, self.log.tables)

    def execute(self) -> pa.Table:
        """The execute phase's work: every partition of the physical plan, once, drained concurrently.

        Drained off this thread, so the plan stops on cancel, timeout or the result cap (``engine.drain``).
        """
        assert self.physical is not None
        assert self.df is not None
        parts = drain_partitions(self.ctx, self.physical, limits=self.limits)
        batches = [batch for part in parts for batch in part]
        schema = batches[0].schema if batches else self.df.schema()
        table = pa.Table.from_batches(batches, schema=schema)
        self.result_bytes = buffer_bytes(batches)
        return table

    def memory(self) -> PlanMemory | None:
        """The executed plan's memory figures (``None`` unless its metrics were collected)."""
        if not self.options.collects_metrics or self.result_bytes is None:
            return None
        return plan_memory(self.metrics, result_bytes=self.result_bytes)

    def scan_units(self) -> tuple[ScanUnit, ...]:
        """Scan units of the executed plan, emitted; an analysis failure is itself reported (warn)."""
        trace_id, span_id = self.log.execute_ids
        try:
            units = self._collect_scan_units()
        except Exception as exc:  # noqa: BLE001 - the plan succeeded; a diagnostics failure must not hide it, nor be hidden
            emit(self.log.sink, self._scan_units_failed(exc))
            return ()
        emit(
            self.log.sink,
            *(u.to_event(run_id=self.options.run_id, trace_id=trace_id, span_id=span_id) for u in units),
        )
        return units

    def _scan_units_failed(self, exc: Exception) -> DiagnosticEvent:
        trace_id, span_id = self.log.execute_ids
        return side_step_failed(
            exc,
            name=SCAN_UNIT_ANALYSIS_FAILED,
            step="scan unit analysis",
            run_id=self.options.run_id,
            plan=self.log.plan,
            category=Category.SCAN_PRUNING,
            trace_id=trace_id,
            span_id=span_id,
        )

    def _collect_scan_units(self) -> tuple[ScanUnit, ...]:
        assert self.physical is not None
        assert self.optimized is not None
        units = collect_scan_units(
            plan_name=self.log.plan,
            executed=self.executed or read_plan(self.physical, labelled=FILE_METRICS),
            optimized=self.optimized,
            tables=self.log.tables,
            pruning=self.binding.tables,
            stand_in_plan=self.binding.stand_in_plan,
        )
        return tuple(units)

    def artifacts(self, failure: PlanError | None) -> dict[str, Any]:
        """The ``datafusion_plan_artifacts_v1`` payload of this run (partial when the plan failed)."""
        captures = capture_plan(
            self.ctx,
            self.log,
            logical=self.logical,
            optimized=self.optimized,
            physical=self.physical,
            metrics=self.metrics,
        )
        return plan_artifacts(
            self.log,
            captures,
            physical=self.physical,
            metrics=self.metrics,
            memory=self.memory(),
            failure=failure,
        )

    def run_phases(self) -> pa.Table:
        """Every phase the options ask for, in order; the result table of the execute phase."""

        def indent(plan: LogicalPlan | ExecutionPlan) -> str:
            return plan.display_indent()

        opts, log = self.options, self.log
        self.df = df = log.run(PlanPhase.LOGICAL, self.plan_logical, lambda df: indent(df.logical_plan()))
        if opts.runs_optimized_phase or opts.capture_plan_artifacts:
            self.logical = df.logical_plan()
        if opts.runs_optimized_phase:
            self.optimized = log.run(PlanPhase.OPTIMIZED, df.optimized_logical_plan, indent)
        self.physical = physical = log.run(PlanPhase.PHYSICAL, df.execution_plan, indent)
        table = log.run(PlanPhase.EXECUTE, self.execute)
        if opts.collects_metrics:
            self.executed = read_plan(physical, labelled=FILE_METRICS)
            self.metrics = operator_metrics(self.executed)
            if log.execute_span is not None:
                emit_operator_spans(log.tracer, log.execute_span, self.metrics)
        return table

    def complete(self) -> PlanExecution:
        """Every phase, the scan units and the artifact (a partial one when a phase failed)."""
        opts = self.options
        try:
            table = self.run_phases()
            units = self.scan_units() if opts.scan_units else ()
            payload: dict[str, Any] | None = None
            if opts.capture_plan_artifacts:
                payload = self.artifacts(None)
                send_artifacts(self.log, payload)
        except PlanError as failure:
            if opts.capture_plan_artifacts:
                send_artifacts(self.log, self.artifacts(failure))
            raise
        finally:
            self.restore()  # after the artifacts: their Substrait round trip resolves tables by name
        return self.result(table, units, payload)

    def result(
        self, table: pa.Table, units: tuple[ScanUnit, ...], payload: Mapping[str, Any] | None
    ) -> PlanExecution:
        """The :class:`PlanExecution` of this run once every phase succeeded."""
        assert self.physical is not None
        return PlanExecution(
            name=self.log.plan,
            table=table,
            phases=tuple(self.log.records),
            plan_hashes=dict(self.log.hashes),
            partition_count=self.physical.partition_count,
            join_operators=physical_joins(self.physical) if self.options.runs_optimized_phase else (),
            scan_units=units,
            operator_metrics=self.metrics,
            artifacts=payload,
            trace_id=self.log.trace_id,
            delta_pruning=self.binding.tables,
            memory=self.memory(),
        )


def execute_plan(
    ctx: SessionContext,
    *,
    name: str,
    sql: str,
    options: CompileOptions,
    sink: DiagnosticsSink,
    tables: Mapping[str, RegisteredTable],
    tracer: Tracer | None = None,
    target_partitions: int | None = None,
    limits: DrainLimits | None = None,
) -> PlanExecution:
    """Plan and run ``sql`` once, recording phases, hashes, artifacts and scan units.

    ``tables`` maps the names registered in ``ctx`` to what registration knew about them (scan units and
    fingerprints use it). ``target_partitions``, when given, is set on the session first
    (``SET datafusion.execution.target_partitions``; it stays set) so that physical plans, and their
    hashes, do not depend on the machine's core count; it is recorded in every phase event. ``limits``
    stop the execute phase early (deadline, result cap; the process's cancel scope always applies).

    Raises :class:`PlanError` naming the plan and the failing phase; the phases before it keep their
    records, and (with ``capture_plan_artifacts``) a partial artifact with ``status="failed"`` is sent.
    """
    if target_partitions is not None:
        _set_target_partitions(ctx, target_partitions)
    log = PhaseLog(
        plan=name,
        sql=sql,
        options=options,
        sink=sink,
        tracer=tracer if tracer is not None else trace.NoOpTracer(),
        tables=tables,
        target_partitions=target_partitions,
    )
    return _PlanRun(ctx=ctx, log=log, limits=limits or DrainLimits()).complete()


def _set_target_partitions(ctx: SessionContext, target_partitions: int) -> None:
    if target_partitions < 1:
        raise ValueError(f"target_partitions must be at least 1, got {target_partitions}")
    ctx.sql(f"SET datafusion.execution.target_partitions = {int(target_partitions)}").collect()
