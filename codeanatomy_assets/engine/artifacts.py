"""The plan artifact: one ``datafusion_plan_artifacts_v1`` payload per plan run, from plans already built.

Every capture step (``EXPLAIN`` text, per-operator metrics, Substrait and its round trip, unparsed SQL,
graphviz, joins) reads the plans the phases built and the metrics of the one execution; nothing runs
twice. A step that is off, not reached (the plan failed before its input existed) or failed is recorded
in ``capture_status`` (and ``capture_errors``), never left as a silent gap.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Final, TypeVar

from datafusion import SessionContext
from datafusion import substrait as df_substrait
from datafusion import unparser as df_unparser
from datafusion.plan import ExecutionPlan, LogicalPlan

from codeanatomy_assets.diagnostics.event_names import DATAFUSION_PLAN_ARTIFACTS, PLAN_ARTIFACTS_HOOK_FAILED
from codeanatomy_assets.diagnostics.events import DiagnosticEvent, now_unix_ms
from codeanatomy_assets.diagnostics.sinks import emit
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.engine.failures import error_summary, side_step_failed
from codeanatomy_assets.engine.fingerprint import FINGERPRINT_VERSION
from codeanatomy_assets.engine.memory import PlanMemory
from codeanatomy_assets.engine.operators import (
    OperatorMetrics,
    logical_joins,
    physical_joins,
    render_explain_analyze,
)
from codeanatomy_assets.engine.phases import PhaseLog, PhaseRecord, PlanPhase
from codeanatomy_assets.errors import PlanError

CAPTURE_ERROR_TYPE: Final = "plan_artifact_capture_unsupported"
"""``error_type`` of a plan artifact whose plan succeeded but one capture step could not be done."""

_T = TypeVar("_T")


class CaptureStatus(StrEnum):
    """What happened to one capture step of the plan artifacts."""

    OK = "ok"
    ERROR = "error"
    """The step is unsupported for this plan or failed; the artifact carries the error text."""
    DISABLED = "disabled"
    """Turned off in :class:`~codeanatomy_assets.engine.options.CompileOptions`."""
    NOT_REACHED = "not_reached"
    """The plan failed before the step's input existed."""


class ArtifactStatus(StrEnum):
    """The ``status`` of a plan artifact: how its plan ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


# ----------------------------------------------------------------------------------------- capture steps


@dataclass(frozen=True, slots=True)
class _Capture:
    status: CaptureStatus
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is CaptureStatus.OK


def _capture(enabled: bool, available: bool, step: Callable[[], Any]) -> _Capture:
    """Run one artifact capture step; a failure becomes the step's recorded error, never a gap."""
    if not enabled:
        return _Capture(CaptureStatus.DISABLED)
    if not available:
        return _Capture(CaptureStatus.NOT_REACHED)
    try:
        return _Capture(CaptureStatus.OK, step())
    except Exception as exc:  # noqa: BLE001 - DataFusion raises bare Exception; the error is recorded in the artifact
        return _Capture(CaptureStatus.ERROR, error=error_summary(exc))


def _capture_from(enabled: bool, source: _T | None, step: Callable[[_T], Any]) -> _Capture:
    """:func:`_capture` of a step over a phase's result: not reached when the phase produced none."""
    if source is None:
        return _capture(enabled, False, lambda: None)
    return _capture(enabled, True, lambda: step(source))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Substrait:
    """The Substrait plan, its round trip, and the round trip after the optimizer."""

    plan: _Capture
    roundtrip: _Capture
    reoptimized: _Capture


def _capture_substrait(
    ctx: SessionContext, enabled: bool, logical: LogicalPlan | None, optimized_text: str | None
) -> _Substrait:
    plan = _capture_from(
        enabled, logical, lambda plan: df_substrait.Producer.to_substrait_plan(plan, ctx).encode()
    )
    roundtrip = _capture(
        enabled,
        plan.ok,
        lambda: df_substrait.Consumer.from_substrait_plan(
            ctx, df_substrait.Serde.deserialize_bytes(plan.value)
        ),
    )
    # Text equality is strict (BETWEEN comes back as two comparisons); equality after the optimizer
    # is the useful check that the round trip kept the query's meaning.
    reoptimized = _capture(
        enabled,
        roundtrip.ok and optimized_text is not None,
        lambda: (
            ctx.create_dataframe_from_logical_plan(roundtrip.value).optimized_logical_plan().display_indent()
        ),
    )
    return _Substrait(plan=plan, roundtrip=roundtrip, reoptimized=reoptimized)


def _capture_unparsed(
    ctx: SessionContext, enabled: bool, logical: LogicalPlan | None
) -> tuple[_Capture, _Capture]:
    """The plan unparsed to SQL, and whether that SQL parses again."""
    unparsed = _capture_from(
        enabled,
        logical,
        # From the unoptimized plan: the optimized one can unparse to invalid SQL (measured).
        lambda plan: df_unparser.Unparser(df_unparser.Dialect.default()).plan_to_sql(plan),
    )
    reparsed = _capture(enabled, unparsed.ok, lambda: ctx.sql(unparsed.value).logical_plan() is not None)
    return unparsed, reparsed


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanCaptures:
    """Every capture step of one artifact, named as in its ``capture_status``."""

    explain: _Capture
    explain_analyze: _Capture
    substrait: _Capture
    substrait_roundtrip: _Capture
    substrait_roundtrip_optimized: _Capture
    unparsed_sql: _Capture
    unparsed_sql_parses: _Capture
    graphviz: _Capture
    join_operators: _Capture
    logical_joins: _Capture

    def by_name(self) -> dict[str, _Capture]:
        """The steps in artifact order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def errors(self) -> dict[str, str]:
        """The error of each step that failed."""
        return {name: c.error for name, c in self.by_name().items() if c.error}

    def substrait_fields(self, texts: Mapping[PlanPhase, str | None]) -> dict[str, Any]:
        """The Substrait plan (base64) and what its round trip kept."""
        plan, roundtrip, reoptimized = (
            self.substrait,
            self.substrait_roundtrip,
            self.substrait_roundtrip_optimized,
        )
        return {
            "substrait_b64": base64.b64encode(plan.value).decode("ascii") if plan.value else None,
            "substrait_roundtrip_ok": roundtrip.ok if plan.value else None,
            "substrait_roundtrip_identical": (
                roundtrip.value.display_indent() == texts[PlanPhase.LOGICAL] if roundtrip.ok else None
            ),
            "substrait_roundtrip_equivalent": (
                reoptimized.value == texts[PlanPhase.OPTIMIZED] if reoptimized.ok else None
            ),
        }


def capture_plan(
    ctx: SessionContext,
    log: PhaseLog,
    *,
    logical: LogicalPlan | None,
    optimized: LogicalPlan | None,
    physical: ExecutionPlan | None,
    metrics: Sequence[OperatorMetrics],
) -> PlanCaptures:
    """Run every capture step over the plans the phases built (those reached) and the run's metrics."""
    opts = log.options
    substrait = _capture_substrait(ctx, opts.capture_substrait, logical, log.texts.get(PlanPhase.OPTIMIZED))
    unparsed, reparsed = _capture_unparsed(ctx, opts.capture_unparsed_sql, logical)
    graph_plan = optimized or logical
    return PlanCaptures(
        substrait=substrait.plan,
        substrait_roundtrip=substrait.roundtrip,
        substrait_roundtrip_optimized=substrait.reoptimized,
        unparsed_sql=unparsed,
        unparsed_sql_parses=reparsed,
        graphviz=_capture_from(opts.capture_graphviz, graph_plan, LogicalPlan.display_graphviz),
        join_operators=_capture_from(True, physical, lambda plan: [j.to_row() for j in physical_joins(plan)]),
        logical_joins=_capture_from(True, graph_plan, logical_joins),
        explain_analyze=_capture(opts.explain_analyze, log.executed, lambda: render_explain_analyze(metrics)),
        explain=_capture_explain(log),
    )


def _capture_explain(log: PhaseLog) -> _Capture:
    """The ``EXPLAIN`` text, from the optimized and physical plans as rendered after their phases."""
    optimized, physical = log.texts.get(PlanPhase.OPTIMIZED), log.texts.get(PlanPhase.PHYSICAL)
    return _capture(
        True,
        optimized is not None and physical is not None,
        lambda: f"logical_plan:\n{optimized}\nphysical_plan:\n{physical}",
    )


# ------------------------------------------------------------------------------------------- payload


def _failure_fields(
    failure: PlanError | None, records: Sequence[PhaseRecord], capture_errors: Mapping[str, str]
) -> dict[str, Any]:
    """How the plan ended: the failing phase and error, or the capture steps that failed."""
    error_type: str | None = None
    error_message: str | None = None
    if failure is not None:
        error_type = records[-1].error_type if records else type(failure).__name__
        error_message = str(failure)
    elif capture_errors:
        error_type = CAPTURE_ERROR_TYPE
        error_message = "; ".join(f"{name}: {error}" for name, error in capture_errors.items())
    return {
        "status": (ArtifactStatus.FAILED if failure else ArtifactStatus.SUCCEEDED).value,
        "failed_phase": failure.phase if failure else None,
        "error_type": error_type,
        "error_message": error_message,
    }


def _run_fields(
    log: PhaseLog, failure: PlanError | None, capture_errors: Mapping[str, str]
) -> dict[str, Any]:
    """Which run and plan the artifact is of, how the plan ended, and its hashes."""
    return {
        "event_time_unix_ms": now_unix_ms(),
        "run_id": log.options.run_id,
        "plan": log.plan,
        **_failure_fields(failure, log.records, capture_errors),
        "plan_hash": log.hashes.get(PlanPhase.OPTIMIZED.value),
        "plan_hashes": dict(log.hashes),
        "fingerprint_version": FINGERPRINT_VERSION,
        "sql": log.sql,
    }


def plan_artifacts(
    log: PhaseLog,
    captures: PlanCaptures,
    *,
    physical: ExecutionPlan | None,
    metrics: Sequence[OperatorMetrics],
    memory: PlanMemory | None,
    failure: PlanError | None,
) -> dict[str, Any]:
    """The ``datafusion_plan_artifacts_v1`` payload of a plan run (partial when the plan failed)."""
    texts = {phase: log.texts.get(phase) for phase in PlanPhase}
    return {
        **_run_fields(log, failure, captures.errors),
        "explain": captures.explain.value,
        "explain_analyze": captures.explain_analyze.value,
        "operator_metrics": [m.to_row() for m in metrics] if log.options.explain_analyze else None,
        "logical_plan": texts[PlanPhase.LOGICAL],
        "optimized_plan": texts[PlanPhase.OPTIMIZED],
        "physical_plan": texts[PlanPhase.PHYSICAL],
        "graphviz": captures.graphviz.value,
        **captures.substrait_fields(texts),
        "unparsed_sql": captures.unparsed_sql.value,
        "unparsed_sql_parses": captures.unparsed_sql_parses.value
        if captures.unparsed_sql_parses.ok
        else None,
        "partition_count": physical.partition_count if physical is not None else None,
        "target_partitions": log.target_partitions,
        "join_operators": captures.join_operators.value,
        "logical_joins": captures.logical_joins.value,
        "capture_status": {name: c.status.value for name, c in captures.by_name().items()},
        "capture_errors": captures.errors,
        "memory": memory.to_row() if memory is not None else None,
    }


def send_artifacts(log: PhaseLog, payload: dict[str, Any]) -> None:
    """The artifact to the sink, then to the hook (a failing hook becomes a warn event)."""
    opts = log.options
    emit(
        log.sink,
        DiagnosticEvent(
            name=DATAFUSION_PLAN_ARTIFACTS,
            run_id=opts.run_id,
            severity=Severity.INFO,
            category=Category.PLAN_PHASE,
            kind=EventKind.ARTIFACT,
            plan=log.plan,
            trace_id=log.execute_ids[0] or log.trace_id,
            event_time_unix_ms=payload["event_time_unix_ms"],
            payload=payload,
        ),
    )
    if opts.plan_artifacts_hook is not None:
        _call_hook(log, opts.plan_artifacts_hook, payload)


def _call_hook(log: PhaseLog, hook: Callable[[Mapping[str, Any]], None], payload: dict[str, Any]) -> None:
    """Call the user's artifact hook; its failure becomes a ``warn`` event."""
    try:
        hook(payload)
    except Exception as exc:  # noqa: BLE001 - the hook is user code: its failure is reported, the plan result stands
        failed = side_step_failed(
            exc,
            name=PLAN_ARTIFACTS_HOOK_FAILED,
            step="plan_artifacts_hook",
            run_id=log.options.run_id,
            plan=log.plan,
            category=Category.TELEMETRY,
        )
        emit(log.sink, failed)
