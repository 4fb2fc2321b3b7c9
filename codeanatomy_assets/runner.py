"""Running a whole build against the project home's persistent Dagster instance.

Used by ``codeanatomy build`` and the end-to-end tests. The run envelope (``datafusion_run_started_v1`` /
``..._finished_v1``) brackets the job; when the job fails before its report asset runs, the report is still
written here and says where the run stopped.

Two executors (:class:`Executor`):

- ``in_process`` (default): every step in this process (``execute_in_process``); the Dagster run id is the
  diagnostics run id, so the UI, the store and the traces line up.
- ``multiprocess``: Dagster's multiprocess executor, one process per step (``dagster.execute_job``). Each
  step process rebuilds the job with :func:`reconstruct_build_job`. Dagster picks the run id there, so the
  diagnostics run id travels as the run tag ``codeanatomy/run_id`` and the run envelope records the Dagster
  run id as ``dagster_run_id``. Step telemetry then comes from each process's ``OTEL_*`` environment.
  Step processes fork from a forkserver that has imported this module (much faster than Dagster's default
  ``spawn``). Python starts one forkserver per process, at first use (extraction's worker pool uses it
  too), and its children see the environment as it was then: in a long-lived process, set the lake's
  credentials before the first build.

The instance is the one configured by ``<home>/dagster/dagster.yaml``: written (SQLite storage) only when
absent, so a ``dagster.yaml`` of your own there (e.g. Postgres storage) is used as it is.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import dagster as dg

from codeanatomy_assets.cancel import CANCEL, CancelScope, watch_signals
from codeanatomy_assets.defs.definitions import JOB_NAME, build_definitions
from codeanatomy_assets.defs.envelope import LAUNCHED_BY_TAG
from codeanatomy_assets.defs.factory import REPORT_ASSET
from codeanatomy_assets.defs.resources import RUN_ID_TAG, CodeAnatomyResource, use_telemetry
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.otel import OTelLogSink, Telemetry, bootstrap_telemetry
from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig
from codeanatomy_assets.diagnostics.runs import DataFusionRun, RunStatus, finish_run, start_run
from codeanatomy_assets.diagnostics.sinks import FanoutSink, emit
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.engine.session import (
    SPILL_FOLDER,
    EngineSettings,
    effective_settings,
    parse_size,
    sweep_spill,
)
from codeanatomy_assets.errors import clean_error_text
from codeanatomy_assets.extract.tree import discover
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.lease import (
    build_lock,
    clear_marker,
    record_abandoned_runs,
    touch_marker,
    write_marker,
)
from codeanatomy_assets.report.run_report import write_run_report
from codeanatomy_assets.spec import (
    BUILTIN_SPEC_NAME,
    STDLIB_SOURCE,
    PipelineSpec,
    load_builtin_spec,
    load_spec,
)
from codeanatomy_assets.sqlite_commits import quiet_sqlite_commits

_DAGSTER_YAML = """\
# Written by codeanatomy: the persistent instance of this project home (runs appear in `dagster dev`).
telemetry:
  enabled: false
"""
# Step failures are logged at ERROR with their stack traces: those stay in the Dagster event log (the UI),
# and the terminal gets one line per failed step with its root cause (BuildOutcome.summary_lines).
_QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
_CHECK_FAILED: Final = "DagsterAssetCheckFailedError"
_PLAN_ERROR_RE: Final = re.compile(
    r"^plan '(?:[^']|'')*' failed in phase (?P<phase>\w+): (?:datafusion\.\w+: )?"
)
_SQL_PARSER_RE: Final = re.compile(r'SQL error: (?:ParserError|TokenizerError)\("(?P<text>.*)"\)')

JobResult = dg.ExecuteInProcessResult | dg.JobExecutionResult
HEARTBEAT_S: Final = 1.0
"""How often a running build touches its marker (the end recorded for it if it is killed)."""


class Executor(StrEnum):
    """Where the steps of a build run."""

    IN_PROCESS = "in_process"
    MULTIPROCESS = "multiprocess"


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildRequest:
    """A validated build: spec, home and switches."""

    spec: PipelineSpec
    home: ProjectHome
    capture: bool = True
    memory_limit: int | None = None
    """Bytes one plan may hold (``--memory-limit``), over the spec's ``[engine] memory_limit``."""

    @classmethod
    def resolve(
        cls,
        *,
        source: Path | None = None,
        config: Path | None = None,
        home: Path | None = None,
        lake: str | None = None,
        capture: bool = True,
        memory_limit: str | int | None = None,
    ) -> BuildRequest:
        """Load and validate everything a build needs before anything is written.

        ``lake`` (else ``CODEANATOMY_LAKE_URI``) moves the datasets and the diagnostics store, e.g. to
        ``s3://bucket/prefix``; :mod:`codeanatomy_assets.home` says where its storage options come from.
        ``memory_limit`` (``2GB``, ``70%``, bytes) overrides the spec's ``[engine] memory_limit``.
        """
        limit = None if memory_limit is None else parse_size(memory_limit, source="--memory-limit")
        spec = load_spec(config).with_source(str(source) if source is not None else None)
        if spec.extract is not None:
            discover(spec.extract.source_path())  # raises SourceTreeError before anything is written
        return cls(spec=spec, home=ProjectHome.resolve(home, lake=lake), capture=capture, memory_limit=limit)

    def resource(self, *, progress: bool = False) -> CodeAnatomyResource:
        """The resource of this build's steps (paths and switches only: no credentials)."""
        return CodeAnatomyResource(
            home=str(self.home.root),
            lake=self.home.lake_uri or "",
            capture_diagnostics=self.capture,
            progress=progress,
            memory_limit=self.memory_limit or 0,
        )

    def engine(self) -> EngineSettings:
        """The engine settings of this build's sessions (what each step's resource computes too)."""
        return dataclasses.replace(
            self.spec.engine,
            memory_limit=self.memory_limit or self.spec.engine.memory_limit,
            spill_dir=self.home.root / SPILL_FOLDER,
        )

    def job_kwargs(self) -> dict[str, Any]:
        """The arguments of :func:`reconstruct_build_job` that rebuild this build's job elsewhere."""
        extract = self.spec.extract
        return {
            "spec": self.spec.source,
            "source": extract.source if extract and extract.source != STDLIB_SOURCE else None,
            "home": str(self.home.root),
            "lake": self.home.lake_uri or "",
            "capture": self.capture,
            "memory_limit": self.memory_limit or 0,
        }


def reconstruct_build_job(
    *, spec: str, source: str | None, home: str, lake: str, capture: bool, memory_limit: int = 0
) -> dg.JobDefinition:
    """The build job of a spec (``builtin:codeanatomy`` or a spec file), rebuilt in a step process.

    Module level so that Dagster can import it (``dagster.build_reconstructable_job``).
    """
    loaded = load_builtin_spec() if spec == BUILTIN_SPEC_NAME else load_spec(spec)
    resource = CodeAnatomyResource(
        home=home, lake=lake, capture_diagnostics=capture, memory_limit=memory_limit
    )
    return build_definitions(loaded.with_source(source), resource).resolve_job_def(JOB_NAME)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFailure:
    """A failed step of the job with its root cause in one line (full stack traces: the Dagster logs)."""

    step: str
    error_type: str
    """The class name of the step's own error (``PlanError``), or ``DagsterAssetCheckFailedError`` when a
    blocking check failed it."""
    cause: str


@dataclass(slots=True, kw_only=True)
class BuildOutcome:
    run_id: str
    success: bool
    report_path: Path
    dagster_run_id: str | None = None
    failed_steps: list[str] = field(default_factory=list)
    step_failures: list[StepFailure] = field(default_factory=list)
    """The failed steps of ``failed_steps`` with their root causes."""
    failed_gates: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    duration_ms: int | None = None
    store_failures: list[str] = field(default_factory=list)
    cancelled_by: str | None = None
    """``SIGINT``, ``SIGTERM`` or ``the Dagster UI`` when the run was cancelled."""
    cancel_signal: int | None = None

    @property
    def exit_code(self) -> int:
        """0 success; 128 + the signal's number when a signal cancelled it (130, 143); else 1."""
        if self.cancel_signal is not None:
            return 128 + self.cancel_signal
        if self.cancelled_by is not None:
            return 1
        return 0 if self.success and not self.failed_gates and not self.store_failures else 1

    def summary_lines(self) -> list[str]:
        if self.cancelled_by is not None:  # one line: the run stopped because it was asked to
            return [
                f"run {self.run_id}: cancelled by {self.cancelled_by} after {self.duration_ms} ms; "
                f"report: {self.report_path}"
            ]
        lines = [f"run {self.run_id}: {'completed' if self.success else 'failed'} in {self.duration_ms} ms"]
        causes = {f.step: f.cause for f in self.step_failures}
        lines += [
            f"  failed step: {s}: {causes[s]}" if s in causes else f"  failed step: {s}"
            for s in self.failed_steps
        ]
        lines += [f"  failed check: {c}" for c in self.failed_checks]
        lines += [f"  failed gate: {g}" for g in self.failed_gates]
        lines += [f"  diagnostics store failed: {f}" for f in self.store_failures]
        return lines


def instance_for(home: ProjectHome) -> dg.DagsterInstance:
    """The persistent Dagster instance under ``<home>/dagster``, as its ``dagster.yaml`` configures it.

    The file is written (SQLite storage, telemetry off) only when there is none: one of your own, e.g.
    with Postgres storage (docs/deployment.md), is used as it is and never changed.
    """
    home.ensure()
    config = home.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(_DAGSTER_YAML, encoding="utf-8")
    with quiet_sqlite_commits(home.dagster_home):  # a new home's databases are created without fsyncs
        return dg.DagsterInstance.from_config(str(home.dagster_home))


def run_build(
    request: BuildRequest,
    *,
    run_id: str,
    progress: bool = False,
    telemetry_config: TelemetryConfig | None = None,
    telemetry: Telemetry | None = None,
    executor: Executor = Executor.IN_PROCESS,
    max_concurrent: int | None = None,
) -> BuildOutcome:
    """Execute the job; never raises for a failing step (the outcome says what failed).

    ``telemetry`` (e.g. with in-memory exporters) wins over ``telemetry_config``; without either, no
    telemetry is exported (the durable store still records everything). With the multiprocess executor
    it covers the run envelope only; ``max_concurrent`` caps the step processes (default: the core count).
    """
    home = request.home.ensure()
    telemetry = telemetry or bootstrap_telemetry(telemetry_config or TelemetryConfig.resolve({}))
    use_telemetry(telemetry)
    store = home.diagnostics_store()
    sink = FanoutSink([store, OTelLogSink(telemetry.logger_provider)])
    store_failures: list[str] = []
    dagster = _DagsterRunWatch(run_id=run_id, home=home)
    with (
        watch_signals(on_cancel=dagster.mark_canceling, poll=dagster.poll) as cancel,
        build_lock(home, cancelled=cancel.is_set) as waited_s,
        telemetry.tracer.start_as_current_span(
            "codeanatomy build", attributes={"codeanatomy.run_id": run_id, "dagster.run_id": run_id}
        ) as span,
    ):
        _close_abandoned_runs(home, sink, store, store_failures)
        sweep_spill(home.root / SPILL_FOLDER)  # what killed or cancelled builds' sessions left
        trace_id = format(span.get_span_context().trace_id, "032x")
        metadata = {**_run_metadata(request, trace_id, executor), "waited_for_lock_s": round(waited_s, 3)}
        metadata["engine"] = effective_settings(request.engine())
        run = start_run(label=request.spec.label, sink=sink, run_id=run_id, metadata=metadata)
        write_marker(home, run_id=run_id, label=run.label, start_time_unix_ms=run.start_time_unix_ms)
        emit(sink, _telemetry_config_event(run_id, telemetry, trace_id))
        _flush(store, store_failures)
        instance = instance_for(home)
        dagster.instance = instance
        if cancel.is_set():  # signalled before the job started: do not start it
            return _cancelled_before_job(request, run, sink, store, cancel)
        if executor is Executor.MULTIPROCESS:
            result: JobResult = _execute_multiprocess(request, run_id, instance, max_concurrent)
        else:
            result = _execute_in_process(request, run_id, instance, progress=progress)
        # Cancelled if asked before the job ended and the job did not finish anyway; a later signal only
        # shortens what is left (the record and the report).
        stopped = cancel.reason if cancel.is_set() and not result.success else None
        stopped_by_signal = cancel.signum if stopped else None
        if stopped:
            dagster.settle_cancelled(cancel)
        telemetry.force_flush()
        for event in _export_failure_events(run_id, telemetry, trace_id):
            emit(sink, event)
        step_failures = _step_failures(result)
        failed_checks = _failed_checks(result)
        run = finish_run(
            run,
            sink=sink,
            status=RunStatus.CANCELLED
            if stopped
            else (RunStatus.COMPLETED if result.success else RunStatus.FAILED),
            metadata={
                "dagster_run_id": result.run_id,
                "failed_checks": failed_checks,
                **({"cancelled_by": stopped} if stopped else {}),
            },
            error=None if stopped else _run_error(step_failures, failed=not result.success),
        )
        _flush(store, store_failures)
        if not store_failures:
            clear_marker(home, run_id)  # the run's end is recorded; else the next build records it
    report = write_run_report(home, run_id, label=request.spec.label)
    telemetry.force_flush()
    reported = _report_materialized(result)
    return BuildOutcome(
        run_id=run_id,
        dagster_run_id=result.run_id,
        success=result.success,
        report_path=report.path,
        failed_steps=[f.step for f in step_failures]
        + ([] if reported else [f"{REPORT_ASSET} (not run: upstream failed)"]),
        step_failures=step_failures,
        failed_gates=[g.name for g in report.gates if not g.passed],
        failed_checks=failed_checks,
        duration_ms=run.to_row().get("duration_ms"),
        store_failures=store_failures,
        cancelled_by=stopped,
        cancel_signal=stopped_by_signal,
    )


def _cancelled_before_job(
    request: BuildRequest,
    run: DataFusionRun,
    sink: FanoutSink,
    store: DeltaDiagnosticsStore,
    cancel: CancelScope,
) -> BuildOutcome:
    """The outcome of a build cancelled after its run was opened but before its job started."""
    run = finish_run(run, sink=sink, status=RunStatus.CANCELLED, metadata={"cancelled_by": cancel.reason})
    failures: list[str] = []
    _flush(store, failures)
    if not failures:
        clear_marker(request.home, run.run_id)
    report = write_run_report(request.home, run.run_id, label=request.spec.label)
    return BuildOutcome(
        run_id=run.run_id,
        success=False,
        report_path=report.path,
        duration_ms=run.duration_ms,
        store_failures=failures,
        cancelled_by=cancel.reason,
        cancel_signal=cancel.signum,
    )


@dataclass(slots=True, kw_only=True)
class _DagsterRunWatch:
    """The Dagster side of cancelling a build: Terminate in the UI, and the run's status in the instance.

    Terminate on a run that ``codeanatomy build`` executes marks it CANCELING (the default run launcher
    has no process of its own to stop); :meth:`cancel_requested` sees that. On a signal,
    :meth:`mark_canceling` marks the run CANCELING at once, so that Dagster ends it as CANCELED when the
    interrupt unwinds the job; :meth:`settle_cancelled` makes sure it did (the job may have finished
    first).
    """

    run_id: str
    home: ProjectHome
    instance: dg.DagsterInstance | None = None
    touched: float = 0.0

    def poll(self) -> str | None:
        """Who cancelled the run elsewhere, if anyone; touches the run's marker each second."""
        if time.monotonic() - self.touched >= HEARTBEAT_S:
            touch_marker(self.home, self.run_id)
            self.touched = time.monotonic()
        return self.cancel_requested()

    def _run(self) -> dg.DagsterRun | None:
        if self.instance is None:
            return None
        run = self.instance.get_run_by_id(self.run_id)
        if run is None:  # the multiprocess executor's run carries our run id as a tag
            found = self.instance.get_runs(filters=dg.RunsFilter(tags={RUN_ID_TAG: self.run_id}), limit=1)
            run = found[0] if found else None
        return run

    def cancel_requested(self) -> str | None:
        run = self._run()
        canceling = (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED)
        return "the Dagster UI" if run is not None and run.status in canceling else None

    def mark_canceling(self) -> None:
        run = self._run()
        if self.instance is None or run is None or run.is_finished:
            return
        if run.status is not dg.DagsterRunStatus.CANCELING:
            self.instance.report_run_canceling(run, message=f"codeanatomy build: {CANCEL.reason}")

    def settle_cancelled(self, cancel: CancelScope) -> None:
        run = self._run()
        if self.instance is not None and run is not None and run.status is not dg.DagsterRunStatus.CANCELED:
            self.instance.report_run_canceled(run, message=f"codeanatomy build cancelled by {cancel.reason}")


def _flush(store: DeltaDiagnosticsStore, failures: list[str]) -> None:
    """Commit the run's own records; a store that cannot commit fails the build's outcome, not the build."""
    try:
        store.flush()
    except Exception as exc:  # noqa: BLE001 - reported in the outcome and on the other sinks by the steps
        failures.append(f"{type(exc).__name__}: {exc}")


def _close_abandoned_runs(
    home: ProjectHome, sink: FanoutSink, store: DeltaDiagnosticsStore, failures: list[str]
) -> None:
    """Record runs whose process died (SIGKILL) as failed, in the store and in the Dagster instance."""
    abandoned = record_abandoned_runs(home, sink)
    if not abandoned:
        return
    _flush(store, failures)
    instance = instance_for(home)
    for marker in abandoned:
        dagster_run = instance.get_run_by_id(marker.run_id)
        if dagster_run is not None and not dagster_run.is_finished:
            instance.report_run_failed(dagster_run)
        if not failures:
            clear_marker(home, marker.run_id)


def _export_failure_events(run_id: str, telemetry: Telemetry, trace_id: str) -> list[DiagnosticEvent]:
    """One warn event per signal whose exporter failed batches in this run (e.g. the endpoint refused)."""
    return [
        DiagnosticEvent(
            name="telemetry_export_failed_v1",
            run_id=run_id,
            severity=Severity.WARN,
            category=Category.TELEMETRY,
            code="export_failed",
            message=f"{count} {signal} export batch(es) failed (endpoint: see telemetry_config_v1)",
            payload={"signal": signal, "failed_batches": count, "ok_batches": telemetry.exports.ok[signal]},
            trace_id=trace_id,
        )
        for signal, count in sorted(telemetry.exports.failed.items())
        if count
    ]


def _execute_in_process(
    request: BuildRequest, run_id: str, instance: dg.DagsterInstance, *, progress: bool
) -> dg.ExecuteInProcessResult:
    job = build_definitions(request.spec, request.resource(progress=progress)).resolve_job_def(JOB_NAME)
    with quiet_sqlite_commits(request.home.dagster_home):  # no fsync per Dagster event (see the module)
        return job.execute_in_process(
            instance=instance,
            run_id=run_id,
            raise_on_error=False,
            run_config=_QUIET_LOGS,
            tags={LAUNCHED_BY_TAG: "codeanatomy"},
        )


def _execute_multiprocess(
    request: BuildRequest, run_id: str, instance: dg.DagsterInstance, max_concurrent: int | None
) -> dg.JobExecutionResult:
    job = dg.build_reconstructable_job(
        __name__, reconstruct_build_job.__name__, reconstructable_kwargs=request.job_kwargs()
    )
    # Forked from a server that imported this module: the imports are paid once, not per step (spawn):
    # the fixture build took 18 s instead of 53 s.
    multiprocess: dict[str, Any] = {"start_method": {"forkserver": {"preload_modules": [__name__]}}}
    if max_concurrent is not None:
        multiprocess["max_concurrent"] = max_concurrent
    run_config = {**_QUIET_LOGS, "execution": {"config": {"multiprocess": multiprocess}}}
    with (
        quiet_sqlite_commits(request.home.dagster_home),
        dg.execute_job(
            job,
            instance=instance,
            run_config=run_config,
            tags={RUN_ID_TAG: run_id, LAUNCHED_BY_TAG: "codeanatomy"},
        ) as result,
    ):
        return result


def _run_metadata(request: BuildRequest, trace_id: str, executor: Executor) -> dict[str, Any]:
    spec = request.spec
    return {
        "spec": spec.source,
        "source": spec.extract.source if spec.extract else None,
        "home": str(request.home.root),
        "lake": request.home.lake,
        "datasets": [d.name for d in spec.datasets],
        "plans": [p.name for p in spec.plans],
        "capture_diagnostics": request.capture,
        "executor": executor.value,
        "trace_id": trace_id,
    }


def _telemetry_config_event(run_id: str, telemetry: Telemetry, trace_id: str) -> DiagnosticEvent:
    return DiagnosticEvent(
        name="telemetry_config_v1",
        run_id=run_id,
        severity=Severity.INFO,
        category=Category.TELEMETRY,
        kind=EventKind.ARTIFACT,
        payload=telemetry.config.snapshot(),
        trace_id=trace_id,
    )


def _check_evaluations(result: JobResult) -> Iterator[tuple[dg.DagsterEvent, dg.AssetCheckEvaluation]]:
    """Each asset check evaluation of the run, with its event (for the step key)."""
    for event in result.all_events:
        evaluation = event.event_specific_data
        if isinstance(evaluation, dg.AssetCheckEvaluation):
            yield event, evaluation


def _failed_checks(result: JobResult) -> list[str]:
    failed = []
    for _event, evaluation in _check_evaluations(result):
        if not evaluation.passed:
            key = evaluation.asset_check_key
            failed.append(f"{key.asset_key.to_user_string()}:{key.name} ({evaluation.severity.value})")
    return sorted(failed)


def _step_failures(result: JobResult) -> list[StepFailure]:
    """Each failed step (sorted) with the root cause of its failure in one line."""
    blocking = _failed_blocking_checks(result)
    failures: dict[str, StepFailure] = {}
    for event in result.all_events:
        step = event.step_key or ""
        if not event.is_step_failure or step in failures:
            continue
        info = event.step_failure_data.error
        # Dagster wraps the asset's own error (DagsterExecutionStepExecutionError): report the user's.
        # (cls_name is None for an error Dagster did not get from an exception.)
        while info is not None and (info.cls_name or "").startswith("Dagster") and info.cause is not None:
            info = info.cause
        error_type = (info.cls_name if info is not None else None) or "StepFailure"
        if error_type == _CHECK_FAILED and blocking.get(step):
            cause = "; ".join(blocking[step])
        else:
            cause = _root_cause(info.message if info is not None else "", error_type)
        failures[step] = StepFailure(step=step, error_type=error_type, cause=cause or "step failed")
    return [failures[s] for s in sorted(failures)]


def _failed_blocking_checks(result: JobResult) -> dict[str, list[str]]:
    """Per step: ``"<explanation> (check <name>)"`` of each blocking ERROR check that failed there."""
    found: dict[str, list[str]] = {}
    for event, evaluation in _check_evaluations(result):
        if evaluation.passed or not evaluation.blocking or evaluation.severity != dg.AssetCheckSeverity.ERROR:
            continue
        explanation = clean_error_text(evaluation.description or "failed")
        found.setdefault(event.step_key or "", []).append(f"{explanation} (check {evaluation.check_name})")
    return found


def _root_cause(message: str, error_type: str) -> str:
    """A step error's message as its root cause: one line, without the class name Dagster puts first, and
    for a plan, without the repeated plan name; a SQL parser error reads as the parser's own message.

    >>> _root_cause("x.PlanError: plan 'p' failed in phase logical: datafusion.sql_error: SQL error: "
    ...             'ParserError("Expected: an expression, found: EOF")', "PlanError")
    'SQL syntax error (phase logical): Expected: an expression, found: EOF'
    """
    text = clean_error_text(message)
    head, sep, rest = text.partition(": ")
    if sep and head.rsplit(".", 1)[-1] == error_type:
        text = rest
    plan = _PLAN_ERROR_RE.match(text)
    if plan is None:
        return text
    rest = text[plan.end() :]
    parser = _SQL_PARSER_RE.fullmatch(rest)
    if parser is not None:
        unescaped = parser["text"].replace('\\"', '"')  # the parser's text is printed Rust-escaped
        return f"SQL syntax error (phase {plan['phase']}): {unescaped}"
    return f"failed in phase {plan['phase']}: {rest}"


def _run_error(failures: list[StepFailure], *, failed: bool) -> BaseException | None:
    """The run's error: named after the first failed step's error class (``error.type``), its message
    naming every failed step with its root cause."""
    if not failed:
        return None
    if not failures:
        return RuntimeError("the run failed before any step failed")
    # Dagster keeps only the class name of a step's error: rebuild a class of that name, so the run
    # envelope's error.type reads e.g. "PlanError" rather than a wrapper's name.
    error_class = type(failures[0].error_type, (Exception,), {"__module__": "builtins"})
    return error_class("; ".join(f"step {f.step}: {f.cause}" for f in failures))


def _report_materialized(result: JobResult) -> bool:
    return any(
        e.is_step_materialization and e.asset_key and e.asset_key.to_user_string() == REPORT_ASSET
        for e in result.all_events
    )
