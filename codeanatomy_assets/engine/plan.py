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

import base64
import datetime as dt
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, TypeVar

import datafusion.expr as dfx
import pyarrow as pa
from datafusion import SessionContext
from datafusion import substrait as df_substrait
from datafusion import unparser as df_unparser
from datafusion.dataframe import DataFrame
from datafusion.plan import ExecutionPlan, LogicalPlan
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from codeanatomy_assets.delta.provider import RegisteredTable
from codeanatomy_assets.delta.pruned import FARM
from codeanatomy_assets.diagnostics import attributes as attr
from codeanatomy_assets.diagnostics.events import DiagnosticEvent, now_unix_ms
from codeanatomy_assets.diagnostics.sinks import DiagnosticsSink, emit
from codeanatomy_assets.diagnostics.table_rows import PLAN_ARTIFACTS_EVENT
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.engine.drain import DrainLimits, buffer_bytes, drain_partitions
from codeanatomy_assets.engine.fingerprint import FINGERPRINT_VERSION, plan_fingerprint
from codeanatomy_assets.engine.memory import PlanMemory, plan_memory
from codeanatomy_assets.engine.metrics import MetricReading, OperatorSnapshot, read_plan
from codeanatomy_assets.engine.predicates import variant_of
from codeanatomy_assets.engine.pruning import TablePruning, bind_pruned_tables, restore_pruned_tables
from codeanatomy_assets.engine.scan import ScanUnit, collect_scan_units
from codeanatomy_assets.engine.scan_metrics import FILE_METRICS, operator_name, parse_pruning
from codeanatomy_assets.errors import PlanError, clean_error_text, error_text, exception_attributes

PLAN_PHASE_EVENT: Final = "datafusion_plan_phase_v1"
CAPTURE_ERROR_TYPE: Final = "plan_artifact_capture_unsupported"
"""``error_type`` of a plan artifact whose plan succeeded but one capture step could not be done."""
PLAN_ARTIFACTS_HOOK_FAILED_EVENT: Final = "plan_artifacts_hook_failed_v1"
SCAN_UNITS_FAILED_EVENT: Final = "scan_unit_analysis_failed_v1"
LINKS_ROOT: Final = "delta_pruned_parquet_links"
"""The name fingerprints give the folder of ``delta_pruned_parquet`` links (``<table:NAME>``)."""

_T = TypeVar("_T")


class PlanPhase(StrEnum):
    """The phases of a plan, in order."""

    LOGICAL = "logical"
    OPTIMIZED = "optimized"
    PHYSICAL = "physical"
    EXECUTE = "execute"


class CaptureStatus(StrEnum):
    """What happened to one capture step of the plan artifacts."""

    OK = "ok"
    ERROR = "error"
    """The step is unsupported for this plan or failed; the artifact carries the error text."""
    DISABLED = "disabled"
    """Turned off in :class:`CompileOptions`."""
    NOT_REACHED = "not_reached"
    """The plan failed before the step's input existed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CompileOptions:
    """What :func:`execute_plan` captures besides phase timings (seed 003 ``DataFusionCompileOptions``)."""

    run_id: str
    fingerprints: bool = True
    """Hash each phase's plan text (:mod:`codeanatomy_assets.engine.fingerprint`)."""
    capture_plan_artifacts: bool = True
    """Build and send the ``datafusion_plan_artifacts_v1`` artifact."""
    explain_analyze: bool = True
    """Collect per-operator metrics from the one execution (and their EXPLAIN ANALYZE-like text)."""
    capture_substrait: bool = True
    capture_graphviz: bool = True
    capture_unparsed_sql: bool = True
    scan_units: bool = True
    """Emit a ``scan_unit_pruning_v1`` record per scan (reads metrics and the Delta logs)."""
    plan_artifacts_hook: Callable[[Mapping[str, Any]], None] | None = None
    """Called with the artifact payload after it went to the sink."""

    @classmethod
    def off(cls, run_id: str) -> CompileOptions:
        """Every capture off: the plan does only its real work; phase durations are still recorded."""
        return cls(
            run_id=run_id,
            fingerprints=False,
            capture_plan_artifacts=False,
            explain_analyze=False,
            capture_substrait=False,
            capture_graphviz=False,
            capture_unparsed_sql=False,
            scan_units=False,
        )

    @property
    def runs_optimized_phase(self) -> bool:
        """Whether the separate ``optimized`` phase runs (something needs the optimized plan)."""
        return self.fingerprints or self.capture_plan_artifacts or self.scan_units

    @property
    def collects_metrics(self) -> bool:
        """Whether the executed plan's metrics are read."""
        return self.explain_analyze or self.scan_units


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseRecord:
    """One phase as it happened (also the payload of ``datafusion_plan_phase_v1``)."""

    phase: PlanPhase
    duration_ms: float
    plan_hash: str | None
    trace_id: str | None
    span_id: str | None
    target_partitions: int | None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def failed(self) -> bool:
        """Whether this phase raised."""
        return self.error_type is not None

    def to_row(self) -> dict[str, Any]:
        """The event payload."""
        payload: dict[str, Any] = {
            "plan_hash": self.plan_hash,
            "phase": self.phase.value,
            "duration_ms": self.duration_ms,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "target_partitions": self.target_partitions,
        }
        if self.failed:
            payload[attr.ERROR_TYPE] = self.error_type
            payload[attr.EXCEPTION_MESSAGE] = self.error_message
        return payload


@dataclass(frozen=True, slots=True, kw_only=True)
class JoinOperator:
    """A join of the physical plan: operator, type and keys as DataFusion prints them."""

    operator: str
    join_type: str | None
    mode: str | None
    on: tuple[tuple[str, str], ...]
    filter: str | None

    def to_row(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "operator": self.operator,
            "join_type": self.join_type,
            "mode": self.mode,
            "on": [list(pair) for pair in self.on],
            "filter": self.filter,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorMetrics:
    """One operator's metrics from the execution, summed over partitions (and files)."""

    operator: str
    depth: int
    metrics: Mapping[str, Any]
    """Counters and times (ns) summed; pruning metrics as ``NAME.total``/``NAME.matched``; timestamps as
    the earliest start / latest end (ISO); other texts (ratios) as the list of their per-partition texts."""
    inexact: tuple[str, ...] = ()
    """Metrics whose text was rounded by DataFusion (``3.00 K``), so their sums are approximate."""

    def to_row(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "operator": self.operator,
            "depth": self.depth,
            "metrics": dict(self.metrics),
            "inexact": list(self.inexact),
        }


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


# ------------------------------------------------------------------------------------ plan inspection


def _split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def operator_fields(display: str) -> dict[str, str]:
    """The ``key=value`` fields of an operator's display text.

    >>> operator_fields("HashJoinExec: mode=Partitioned, join_type=Inner, on=[(a@0, b@1)]")["on"]
    '[(a@0, b@1)]'
    """
    _, _, rest = display.partition(":")
    fields: dict[str, str] = {}
    last: str | None = None
    for part in _split_top_level(rest):
        key, eq, value = part.partition("=")
        if eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            last = key.strip()
            fields[last] = value.strip()
        elif last is not None:
            fields[last] += ", " + part
    return fields


def _join_keys(on: str) -> tuple[tuple[str, str], ...]:
    inner = on.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    pairs: list[tuple[str, str]] = []
    for pair in _split_top_level(inner):
        body = pair[1:-1] if pair.startswith("(") and pair.endswith(")") else pair
        sides = _split_top_level(body)
        if len(sides) == 2:
            pairs.append((sides[0], sides[1]))
    return tuple(pairs)


def physical_joins(plan: ExecutionPlan) -> tuple[JoinOperator, ...]:
    """Every join operator of a physical plan, top first."""
    joins: list[JoinOperator] = []
    stack = [plan]
    while stack:
        node = stack.pop()
        name = operator_name(node)
        if "Join" in name:
            fields = operator_fields(node.display())
            joins.append(
                JoinOperator(
                    operator=name,
                    join_type=fields.get("join_type"),
                    mode=fields.get("mode"),
                    on=_join_keys(fields.get("on", "")),
                    filter=fields.get("filter"),
                )
            )
        stack.extend(reversed(node.children()))
    return tuple(joins)


def logical_joins(plan: LogicalPlan) -> list[dict[str, Any]]:
    """Every join of a logical plan with its type, keys (qualified names) and filter."""
    joins: list[dict[str, Any]] = []

    def walk(node: LogicalPlan) -> None:
        variant = variant_of(node)
        if isinstance(variant, dfx.Join):
            condition = variant.filter()
            joins.append(
                {
                    "join_type": str(variant.join_type()),
                    "on": [[left.canonical_name(), right.canonical_name()] for left, right in variant.on()],
                    "filter": condition.canonical_name() if condition is not None else None,
                }
            )
        for child in node.inputs():
            walk(child)

    walk(plan)
    return joins


def _aggregate_metrics(metrics: Sequence[MetricReading]) -> tuple[dict[str, Any], tuple[str, ...]]:
    values: dict[str, Any] = {}
    texts: dict[str, list[str]] = {}
    inexact: set[str] = set()
    for metric in metrics:
        name, value = metric.name, metric.value
        if isinstance(value, dt.datetime):
            stamp = value.isoformat()
            pick = min if name.startswith("start") else max
            values[name] = pick(values.get(name, stamp), stamp)
            continue
        if isinstance(value, int):
            values[name] = values.get(name, 0) + value
            continue
        text = metric.text or ""  # value None: a count, a pruning or a ratio, only in its text
        if text.isdigit():
            values[name] = values.get(name, 0) + int(text)
            continue
        pruning = parse_pruning(text)
        if pruning is not None:
            for part, count in (("total", pruning.total), ("matched", pruning.matched)):
                values[f"{name}.{part}"] = values.get(f"{name}.{part}", 0) + count
            if not pruning.exact:
                inexact.add(name)
        else:
            texts.setdefault(name, []).append(text)
    values.update(texts)
    return values, tuple(sorted(inexact))


def operator_metrics(plan: ExecutionPlan | OperatorSnapshot) -> tuple[OperatorMetrics, ...]:
    """Every operator's metrics of an executed plan, top first, with depths.

    Takes the plan itself or its :func:`~codeanatomy_assets.engine.metrics.read_plan` copy (read once,
    shared with the scan units).
    """
    snapshot = plan if isinstance(plan, OperatorSnapshot) else read_plan(plan)
    found: list[OperatorMetrics] = []
    for node, depth in snapshot.walk():
        if node.metrics is not None:
            values, inexact = _aggregate_metrics(node.metrics)
            found.append(OperatorMetrics(operator=node.display, depth=depth, metrics=values, inexact=inexact))
    return tuple(found)


def _format_metric(name: str, value: Any) -> str:
    if isinstance(value, int) and ("time" in name or name == "elapsed_compute"):
        return f"{name}={value / 1e6:.3f}ms"
    if isinstance(value, list):
        return f"{name}=[{'; '.join(value)}]"
    return f"{name}={value}"


def render_explain_analyze(metrics: Sequence[OperatorMetrics]) -> str:
    """An EXPLAIN ANALYZE-like text of the one execution (timestamps left out)."""
    lines = []
    for op in metrics:
        shown = [
            _format_metric(name, value)
            for name, value in op.metrics.items()
            if name not in {"start_timestamp", "end_timestamp"}
        ]
        lines.append(f"{'  ' * op.depth}{op.operator}, metrics=[{', '.join(shown)}]")
    return "\n".join(lines)


_DF_ERROR_RE: Final = re.compile(
    r"^(?P<kind>SQL error|Schema error|Error during planning|Execution error|Arrow error|Internal error|"
    r"Invalid regex|This feature is not implemented|[A-Z][A-Za-z]*(?: [A-Za-z]+)? error)"
)


def error_type(exc: BaseException) -> str:
    """A low-cardinality ``error.type``: the kind of DataFusion's root cause when its message names one.

    >>> error_type(Exception("DataFusion error: Arrow error: Divide by zero error"))
    'datafusion.arrow_error'
    >>> error_type(Exception("DataFusion error: Optimizer rule 'x' failed caused by Arrow error: Cast error"))
    'datafusion.arrow_error'
    >>> error_type(KeyError("x"))
    'KeyError'
    """
    if type(exc) in {Exception, ValueError, RuntimeError}:
        # The root cause is last: "... failed caused by Arrow error: ...".
        root = re.split(r"\bcaused by\b", str(exc))[-1].strip()
        root = re.sub(r"^DataFusion error:\s*", "", root)
        match = _DF_ERROR_RE.match(root)
        if match is not None:
            return "datafusion." + re.sub(r"\W+", "_", match["kind"].lower()).strip("_")
    module = type(exc).__module__
    return type(exc).__qualname__ if module == "builtins" else f"{module}.{type(exc).__qualname__}"


# --------------------------------------------------------------------------------------------- running


def _span_ids(span: Span) -> tuple[str | None, str | None]:
    context = span.get_span_context()
    if not context.is_valid:
        return None, None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


def _one_line(text: str, limit: int = 500) -> str:
    """A multi-line DataFusion message (``... failed\\ncaused by\\n...``) as one clean line, shortened."""
    return clean_error_text(text, limit)


@dataclass(slots=True)
class _Capture:
    status: CaptureStatus
    value: Any = None
    error: str | None = None


def _capture(enabled: bool, available: bool, step: Callable[[], Any]) -> _Capture:
    """Run one artifact capture step; a failure becomes the step's recorded error, never a gap."""
    if not enabled:
        return _Capture(CaptureStatus.DISABLED)
    if not available:
        return _Capture(CaptureStatus.NOT_REACHED)
    try:
        return _Capture(CaptureStatus.OK, step())
    except Exception as exc:  # noqa: BLE001 - DataFusion raises bare Exception; the error is recorded in the artifact
        return _Capture(CaptureStatus.ERROR, error=f"{error_type(exc)}: {_one_line(str(exc))}")


def _capture_from(enabled: bool, source: _T | None, step: Callable[[_T], Any]) -> _Capture:
    """:func:`_capture` of a step over a phase's result: not reached when the phase produced none."""
    if source is None:
        return _capture(enabled, False, lambda: None)
    return _capture(enabled, True, lambda: step(source))


@dataclass(slots=True)
class _PlanRun:
    """The mutable state of one :func:`execute_plan` call."""

    ctx: SessionContext
    name: str
    sql: str
    options: CompileOptions
    sink: DiagnosticsSink
    tables: Mapping[str, RegisteredTable]
    tracer: Tracer
    target_partitions: int | None
    phases: list[PhaseRecord] = field(default_factory=list)
    texts: dict[PlanPhase, str] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    df: DataFrame | None = None
    logical: LogicalPlan | None = None
    optimized: LogicalPlan | None = None
    physical: ExecutionPlan | None = None
    metrics: tuple[OperatorMetrics, ...] = ()
    executed: OperatorSnapshot | None = None
    """The executed plan's metrics, read once (operator metrics and scan units share them)."""
    execute_ids: tuple[str | None, str | None] = (None, None)
    pruning: tuple[TablePruning, ...] = ()
    limits: DrainLimits = field(default_factory=DrainLimits)
    result_bytes: int | None = None

    @property
    def table_roots(self) -> dict[str, str]:
        roots = {name: table.uri for name, table in self.tables.items()}
        if FARM.root is not None:  # delta_pruned_parquet scans read links in a per-process folder
            roots[LINKS_ROOT] = FARM.root
        return roots

    def _event(self, record: PhaseRecord) -> DiagnosticEvent:
        failed = record.failed
        return DiagnosticEvent(
            name=PLAN_PHASE_EVENT,
            run_id=self.options.run_id,
            severity=Severity.ERROR if failed else Severity.INFO,
            category=Category.PLAN_PHASE,
            code="plan_phase_failed" if failed else None,
            message=f"plan {self.name!r} failed in phase {record.phase}: {record.error_message}"
            if failed
            else None,
            plan=self.name,
            trace_id=record.trace_id,
            span_id=record.span_id,
            payload=record.to_row(),
        )

    @contextmanager
    def _span(self, phase: PlanPhase) -> Iterator[Span]:
        attributes: dict[str, Any] = {
            attr.PLAN: self.name,
            attr.PLAN_PHASE: phase.value,
            attr.RUN_ID: self.options.run_id,
            attr.DB_SYSTEM: "datafusion",
        }
        if phase is PlanPhase.LOGICAL:
            attributes[attr.DB_QUERY_TEXT] = self.sql
        with self.tracer.start_as_current_span(
            f"datafusion.plan.{phase.value}",
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            yield span

    def run_phase(
        self, phase: PlanPhase, work: Callable[[], _T], text: Callable[[_T], str] | None = None
    ) -> _T:
        """Time ``work`` in its span and record the phase; a failure is recorded, then :class:`PlanError`."""
        with self._span(phase) as span:
            trace_id, span_id = _span_ids(span)
            started = time.perf_counter()
            try:
                result = work()
            except Exception as exc:  # every failure of a phase is recorded, then re-raised as PlanError
                duration = (time.perf_counter() - started) * 1000.0
                kind, message = error_type(exc), error_text(exc)
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, _one_line(message)))
                span.set_attribute(attr.ERROR_TYPE, kind)
                record = PhaseRecord(
                    phase=phase,
                    duration_ms=duration,
                    plan_hash=None,
                    trace_id=trace_id,
                    span_id=span_id,
                    target_partitions=self.target_partitions,
                    error_type=kind,
                    error_message=message,
                )
                self.phases.append(record)
                emit(self.sink, self._event(record))
                raise PlanError(f"{kind}: {_one_line(message)}", plan=self.name, phase=phase.value) from exc
            duration = (time.perf_counter() - started) * 1000.0
            if text is not None and (self.options.fingerprints or self.options.capture_plan_artifacts):
                self.texts[phase] = text(result)
            plan_hash = None
            if phase is PlanPhase.EXECUTE:
                plan_hash = self.hashes.get(PlanPhase.PHYSICAL.value)  # the plan that ran
            elif phase in self.texts and self.options.fingerprints:
                plan_hash = plan_fingerprint(phase.value, self.texts[phase], table_roots=self.table_roots)
            if plan_hash is not None:
                self.hashes[phase.value] = plan_hash
                span.set_attribute(attr.PLAN_HASH, plan_hash)
            record = PhaseRecord(
                phase=phase,
                duration_ms=duration,
                plan_hash=plan_hash,
                trace_id=trace_id,
                span_id=span_id,
                target_partitions=self.target_partitions,
            )
            self.phases.append(record)
            if phase is PlanPhase.EXECUTE:
                self.execute_ids = (trace_id, span_id)
            emit(self.sink, self._event(record))
            return result

    def plan_logical(self) -> DataFrame:
        """The logical phase's work: bind ``delta_pruned_parquet`` tables to their files, then plan."""
        self.pruning = bind_pruned_tables(self.ctx, self.sql, self.tables)
        return self.ctx.sql(self.sql)

    def restore(self) -> None:
        """Register the tables :meth:`plan_logical` bound over every live file again."""
        restore_pruned_tables(self.ctx, self.pruning, self.tables)

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
        assert self.physical is not None
        assert self.optimized is not None
        trace_id, span_id = self.execute_ids
        try:
            units = tuple(
                collect_scan_units(
                    plan_name=self.name,
                    executed=self.executed or read_plan(self.physical, labelled=FILE_METRICS),
                    optimized=self.optimized,
                    tables=self.tables,
                    pruning=self.pruning,
                    sql=self.sql,
                )
            )
        except Exception as exc:  # noqa: BLE001 - the plan succeeded; a diagnostics failure must not hide it, nor be hidden
            emit(
                self.sink,
                DiagnosticEvent(
                    name=SCAN_UNITS_FAILED_EVENT,
                    run_id=self.options.run_id,
                    severity=Severity.WARN,
                    category=Category.SCAN_PRUNING,
                    plan=self.name,
                    trace_id=trace_id,
                    span_id=span_id,
                    message=f"scan unit analysis failed: {error_type(exc)}: {_one_line(str(exc))}",
                    payload={attr.ERROR_TYPE: error_type(exc), **exception_attributes(exc, None)},
                ),
            )
            return ()
        emit(
            self.sink,
            *(u.to_event(run_id=self.options.run_id, trace_id=trace_id, span_id=span_id) for u in units),
        )
        return units

    def artifacts(self, failure: PlanError | None) -> dict[str, Any]:
        """The ``datafusion_plan_artifacts_v1`` payload of this run (partial when the plan failed)."""
        opts = self.options
        logical, optimized, physical = self.logical, self.optimized, self.physical
        # Rendered right after each phase: the physical text afterwards would hold dynamic filters' values.
        texts = {phase: self.texts.get(phase) for phase in PlanPhase}
        executed = any(p.phase is PlanPhase.EXECUTE and not p.failed for p in self.phases)

        substrait = _capture_from(
            opts.capture_substrait,
            logical,
            lambda plan: df_substrait.Producer.to_substrait_plan(plan, self.ctx).encode(),
        )
        roundtrip = _capture(
            opts.capture_substrait,
            substrait.status is CaptureStatus.OK,
            lambda: df_substrait.Consumer.from_substrait_plan(
                self.ctx, df_substrait.Serde.deserialize_bytes(substrait.value)
            ),
        )
        # Text equality is strict (BETWEEN comes back as two comparisons); equality after the optimizer
        # is the useful check that the round trip kept the query's meaning.
        reoptimized = _capture(
            opts.capture_substrait,
            roundtrip.status is CaptureStatus.OK and texts[PlanPhase.OPTIMIZED] is not None,
            lambda: (
                self.ctx.create_dataframe_from_logical_plan(roundtrip.value)
                .optimized_logical_plan()
                .display_indent()
            ),
        )
        unparsed = _capture_from(
            opts.capture_unparsed_sql,
            logical,
            # From the unoptimized plan: the optimized one can unparse to invalid SQL (measured).
            lambda plan: df_unparser.Unparser(df_unparser.Dialect.default()).plan_to_sql(plan),
        )
        reparsed = _capture(
            opts.capture_unparsed_sql,
            unparsed.status is CaptureStatus.OK,
            lambda: self.ctx.sql(unparsed.value).logical_plan() is not None,
        )
        graph_plan = optimized or logical
        graphviz = _capture_from(opts.capture_graphviz, graph_plan, LogicalPlan.display_graphviz)
        joins = _capture_from(True, physical, lambda plan: [j.to_row() for j in physical_joins(plan)])
        logical_join_list = _capture_from(True, graph_plan, logical_joins)
        analyze = _capture(opts.explain_analyze, executed, lambda: render_explain_analyze(self.metrics))
        explain = _capture(
            True,
            texts[PlanPhase.OPTIMIZED] is not None and texts[PlanPhase.PHYSICAL] is not None,
            lambda: (
                f"logical_plan:\n{texts[PlanPhase.OPTIMIZED]}\nphysical_plan:\n{texts[PlanPhase.PHYSICAL]}"
            ),
        )
        captures = {
            "explain": explain,
            "explain_analyze": analyze,
            "substrait": substrait,
            "substrait_roundtrip": roundtrip,
            "substrait_roundtrip_optimized": reoptimized,
            "unparsed_sql": unparsed,
            "unparsed_sql_parses": reparsed,
            "graphviz": graphviz,
            "join_operators": joins,
            "logical_joins": logical_join_list,
        }
        capture_errors = {name: c.error for name, c in captures.items() if c.error}
        failure_type: str | None = None
        failure_message: str | None = None
        if failure is not None:
            failure_type = self.phases[-1].error_type if self.phases else type(failure).__name__
            failure_message = str(failure)
        elif capture_errors:
            failure_type = CAPTURE_ERROR_TYPE
            failure_message = "; ".join(f"{name}: {error}" for name, error in capture_errors.items())
        return {
            "event_time_unix_ms": now_unix_ms(),
            "run_id": opts.run_id,
            "plan": self.name,
            "status": "failed" if failure else "succeeded",
            "failed_phase": failure.phase if failure else None,
            "error_type": failure_type,
            "error_message": failure_message,
            "plan_hash": self.hashes.get(PlanPhase.OPTIMIZED.value),
            "plan_hashes": dict(self.hashes),
            "fingerprint_version": FINGERPRINT_VERSION,
            "sql": self.sql,
            "explain": explain.value,
            "explain_analyze": analyze.value,
            "operator_metrics": [m.to_row() for m in self.metrics] if opts.explain_analyze else None,
            "logical_plan": texts[PlanPhase.LOGICAL],
            "optimized_plan": texts[PlanPhase.OPTIMIZED],
            "physical_plan": texts[PlanPhase.PHYSICAL],
            "graphviz": graphviz.value,
            "substrait_b64": base64.b64encode(substrait.value).decode("ascii") if substrait.value else None,
            "substrait_roundtrip_ok": roundtrip.status is CaptureStatus.OK if substrait.value else None,
            "substrait_roundtrip_identical": (
                roundtrip.value.display_indent() == texts[PlanPhase.LOGICAL]
                if roundtrip.status is CaptureStatus.OK
                else None
            ),
            "substrait_roundtrip_equivalent": (
                reoptimized.value == texts[PlanPhase.OPTIMIZED]
                if reoptimized.status is CaptureStatus.OK
                else None
            ),
            "unparsed_sql": unparsed.value,
            "unparsed_sql_parses": reparsed.value if reparsed.status is CaptureStatus.OK else None,
            "partition_count": physical.partition_count if physical is not None else None,
            "target_partitions": self.target_partitions,
            "join_operators": joins.value,
            "logical_joins": logical_join_list.value,
            "capture_status": {name: c.status.value for name, c in captures.items()},
            "capture_errors": capture_errors,
            "memory": memory.to_row() if (memory := self.memory()) is not None else None,
        }

    def send_artifacts(self, payload: dict[str, Any]) -> None:
        """The artifact to the sink, then to the hook (a failing hook becomes a warn event)."""
        emit(
            self.sink,
            DiagnosticEvent(
                name=PLAN_ARTIFACTS_EVENT,
                run_id=self.options.run_id,
                severity=Severity.INFO,
                category=Category.PLAN_PHASE,
                kind=EventKind.ARTIFACT,
                plan=self.name,
                trace_id=self.execute_ids[0] or (self.phases[0].trace_id if self.phases else None),
                event_time_unix_ms=payload["event_time_unix_ms"],
                payload=payload,
            ),
        )
        hook = self.options.plan_artifacts_hook
        if hook is None:
            return
        try:
            hook(payload)
        except Exception as exc:  # noqa: BLE001 - the hook is user code: its failure is reported, the plan result stands
            emit(
                self.sink,
                DiagnosticEvent(
                    name=PLAN_ARTIFACTS_HOOK_FAILED_EVENT,
                    run_id=self.options.run_id,
                    severity=Severity.WARN,
                    category=Category.TELEMETRY,
                    plan=self.name,
                    message=f"plan_artifacts_hook failed: {error_type(exc)}: {_one_line(str(exc))}",
                    payload={attr.ERROR_TYPE: error_type(exc), **exception_attributes(exc, None)},
                ),
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
        if target_partitions < 1:
            raise ValueError(f"target_partitions must be at least 1, got {target_partitions}")
        ctx.sql(f"SET datafusion.execution.target_partitions = {int(target_partitions)}").collect()
    run = _PlanRun(
        ctx=ctx,
        name=name,
        sql=sql,
        options=options,
        sink=sink,
        tables=tables,
        tracer=tracer if tracer is not None else trace.NoOpTracer(),
        target_partitions=target_partitions,
        limits=limits or DrainLimits(),
    )
    try:
        table = _run_phases(run)
        units = run.scan_units() if options.scan_units else ()
        payload: dict[str, Any] | None = None
        if options.capture_plan_artifacts:
            payload = run.artifacts(None)
            run.send_artifacts(payload)
    except PlanError as failure:
        if options.capture_plan_artifacts:
            run.send_artifacts(run.artifacts(failure))
        raise
    finally:
        run.restore()  # after the artifacts: their Substrait round trip resolves tables by name
    assert run.physical is not None
    return PlanExecution(
        name=name,
        table=table,
        phases=tuple(run.phases),
        plan_hashes=dict(run.hashes),
        partition_count=run.physical.partition_count,
        join_operators=physical_joins(run.physical) if options.runs_optimized_phase else (),
        scan_units=units,
        operator_metrics=run.metrics,
        artifacts=payload,
        trace_id=run.phases[0].trace_id if run.phases else None,
        delta_pruning=run.pruning,
        memory=run.memory(),
    )


def _run_phases(run: _PlanRun) -> pa.Table:
    def indent(plan: LogicalPlan | ExecutionPlan) -> str:
        return plan.display_indent()

    run.df = run.run_phase(PlanPhase.LOGICAL, run.plan_logical, lambda df: indent(df.logical_plan()))
    if run.options.runs_optimized_phase or run.options.capture_plan_artifacts:
        run.logical = run.df.logical_plan()
    if run.options.runs_optimized_phase:
        run.optimized = run.run_phase(PlanPhase.OPTIMIZED, run.df.optimized_logical_plan, indent)
    run.physical = run.run_phase(PlanPhase.PHYSICAL, run.df.execution_plan, indent)
    table = run.run_phase(PlanPhase.EXECUTE, run.execute)
    if run.options.collects_metrics:
        run.executed = read_plan(run.physical, labelled=FILE_METRICS)
        run.metrics = operator_metrics(run.executed)
    return table
