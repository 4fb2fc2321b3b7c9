"""Running a whole build against the project home's persistent Dagster instance.

Used by ``codeanatomy build`` and the end-to-end tests. The run envelope (``datafusion_run_started_v1`` /
``..._finished_v1``) brackets the job, and so do its OpenLineage START and COMPLETE / FAIL / ABORT when
lineage is configured (:mod:`codeanatomy_assets.lineage.hooks`); when the job fails before its report asset
runs, the report is still written here and says where the run stopped.

Three executors (:class:`Executor`):

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
- ``celery``: ``dagster-celery``'s executor; each step is a Celery task that a worker process runs
  (:mod:`codeanatomy_assets.celery_settings`). Like ``multiprocess``, the workers rebuild the job with
  :func:`reconstruct_build_job` and record under the run tag; they open the instance this process uses
  (by reference: Postgres when the workers are on other hosts) and read the lake's credentials from their
  own environment.

The instance is the one configured by ``<home>/dagster/dagster.yaml``: written (SQLite storage) only when
absent, so a ``dagster.yaml`` of your own there (e.g. Postgres storage) is used as it is.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from codeanatomy_assets.build_key import build_key
from codeanatomy_assets.build_outcome import BuildOutcome, JobEnding, JobResult
from codeanatomy_assets.build_request import BuildRequest, Executor, celery_settings
from codeanatomy_assets.build_stamp import clear_stamp, stamp_build, table_versions
from codeanatomy_assets.cancel import CancelScope, watch_signals
from codeanatomy_assets.celery_settings import CelerySettings, require_dagster_celery
from codeanatomy_assets.dagster_run_watch import DagsterRunWatch
from codeanatomy_assets.defs.definitions import JOB_NAME, build_definitions
from codeanatomy_assets.defs.envelope import LAUNCHED_BY_TAG
from codeanatomy_assets.defs.resources import RUN_ID_TAG, CodeAnatomyResource, use_telemetry
from codeanatomy_assets.diagnostics.event_names import TELEMETRY_CONFIG, TELEMETRY_EXPORT_FAILED
from codeanatomy_assets.diagnostics.events import DiagnosticEvent, now_unix_ms
from codeanatomy_assets.diagnostics.otel import OTelLogSink, Telemetry, bootstrap_telemetry
from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig
from codeanatomy_assets.diagnostics.runs import DataFusionRun, RunStatus, finish_run, start_run
from codeanatomy_assets.diagnostics.sinks import FanoutSink, emit
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.engine.session import (
    SPILL_FOLDER,
    effective_settings,
    sweep_spill,
)
from codeanatomy_assets.errors import exception_text
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.lease import (
    BuildLockTimeoutError,
    build_lock,
    clear_marker,
    record_abandoned_runs,
    write_marker,
)
from codeanatomy_assets.lineage.hooks import build_run, sink_report
from codeanatomy_assets.report.run_report import RenderedReport, write_run_report
from codeanatomy_assets.spec import (
    BUILTIN_SPEC_NAME,
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


def reconstruct_build_job(
    *,
    spec: str,
    source: str | None,
    home: str,
    lake: str,
    capture: bool,
    memory_limit: int = 0,
    full: bool = False,
    executor: str = "",
) -> dg.JobDefinition:
    """The build job of a spec (``builtin:codeanatomy`` or a spec file), rebuilt in a step process.

    Module level so that Dagster can import it (``dagster.build_reconstructable_job``). ``executor``
    ``celery`` gives the job ``dagster_celery.celery_executor``; else the job has Dagster's default.
    """
    loaded = load_builtin_spec() if spec == BUILTIN_SPEC_NAME else load_spec(spec)
    resource = CodeAnatomyResource(
        home=home,
        lake=lake,
        capture_diagnostics=capture,
        memory_limit=memory_limit,
        full_rebuild=full,
        html_in_step=False,  # the CLI that launched the job writes the final report, HTML included
    )
    executor_def = _celery_executor() if executor == Executor.CELERY else None
    return build_definitions(loaded.with_source(source), resource, executor_def).resolve_job_def(JOB_NAME)


def _celery_executor() -> dg.ExecutorDefinition:
    require_dagster_celery()
    from dagster_celery import celery_executor

    return celery_executor


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
    celery: CelerySettings | None = None,
) -> BuildOutcome:
    """Execute the job; never raises for a failing step (the outcome says what failed).

    ``telemetry`` (e.g. with in-memory exporters) wins over ``telemetry_config``; without either, no
    telemetry is exported (the durable store still records everything). With the multiprocess executor
    it covers the run envelope only; ``max_concurrent`` caps the step processes (default: the core count).
    ``celery`` is the Celery executor's broker and backend (default: from the environment); a missing
    broker or ``dagster-celery`` raises :class:`ConfigError` before anything is written.
    """
    settings = _executor_settings(executor, celery)
    home = request.home.ensure()
    telemetry = telemetry or bootstrap_telemetry(telemetry_config or TelemetryConfig.resolve({}))
    use_telemetry(telemetry)
    key = build_key(request, executor, telemetry.config)  # of the code and settings the job runs with
    records = _RunRecords.open(home, telemetry)
    dagster = DagsterRunWatch(run_id=run_id, home=home)
    with (
        watch_signals(on_cancel=dagster.mark_canceling, poll=dagster.poll) as cancel,
        build_lock(home, cancelled=cancel.is_set) as waited_s,
        telemetry.tracer.start_as_current_span(
            "codeanatomy build", attributes={"codeanatomy.run_id": run_id, "dagster.run_id": run_id}
        ) as span,
    ):
        _prepare_home(home, records)
        trace_id = format(span.get_span_context().trace_id, "032x")
        run = _open_run(request, run_id, records, telemetry, trace_id, settings=settings, waited_s=waited_s)
        lineage_report = sink_report(records.sink, run_id, trace_id)
        with build_run(request.spec, home, run_id, lineage_report) as lineage:
            dagster.instance = instance = instance_for(home)
            if cancel.is_set():  # signalled before the job started: do not start it
                lineage.ended(RunStatus.CANCELLED)
                return _cancelled_before_job(request, run, records, cancel)
            result = _execute(
                request, run_id, instance, settings, progress=progress, max_concurrent=max_concurrent
            )
            stopped = _cancelled_during_job(cancel, result, dagster)
            telemetry.force_flush()
            for event in _export_failure_events(run_id, telemetry, trace_id):
                emit(records.sink, event)
            job = JobEnding.read(result)
            lineage.ended(*_ending(job, stopped))
            run = _finish_run(run, records, job, stopped=stopped)
            versions = table_versions(request) if job.success and stopped is None else None
    report = write_run_report(home, run_id, label=request.spec.label, baseline=request.spec.baseline)
    telemetry.force_flush()
    outcome = _job_outcome(run, job, report, records.store_failures, stopped=stopped)
    if versions is not None and outcome.exit_code == 0:
        _stamp(request, key, outcome, versions)
    return outcome


def _prepare_home(home: ProjectHome, records: _RunRecords) -> None:
    """Under the build lock, before the run: record runs whose process died, remove what killed or
    cancelled builds' sessions spilled, and forget the last build's stamp (until this one ends well)."""
    _close_abandoned_runs(home, records)
    sweep_spill(home.root / SPILL_FOLDER)
    clear_stamp(home)


def _stamp(request: BuildRequest, key: str, outcome: BuildOutcome, versions: dict[str, int | None]) -> None:
    """Stamp a build that ended well with the table versions it left (read under its lock). Another build
    that took the lock since owns the home's state, and a stamp that cannot be written is no stamp:
    either way the next build runs."""
    with contextlib.suppress(BuildLockTimeoutError, OSError), build_lock(request.home, timeout_s=0):
        stamp_build(
            request,
            key,
            run_id=outcome.run_id,
            report_path=outcome.report_path,
            finished_unix_ms=now_unix_ms(),
            versions=versions,
        )


@dataclass(slots=True, kw_only=True)
class _RunRecords:
    """Where a build records its run envelope (the durable store and the OpenTelemetry logs), and which
    of the store's commits failed."""

    home: ProjectHome
    store: DeltaDiagnosticsStore
    sink: FanoutSink
    store_failures: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, home: ProjectHome, telemetry: Telemetry) -> _RunRecords:
        store = home.diagnostics_store()
        return cls(home=home, store=store, sink=FanoutSink([store, OTelLogSink(telemetry.logger_provider)]))

    def flush(self) -> str | None:
        """Commit the run's own records; a store that cannot commit fails the build's outcome, not the
        build. Returns the failure (kept in ``store_failures`` too), ``None`` when committed."""
        try:
            self.store.flush()
        except Exception as exc:  # noqa: BLE001 - reported in the outcome and on the other sinks by the steps
            self.store_failures.append(exception_text(exc, limit=None))
            return self.store_failures[-1]
        return None

    def close(self, run_id: str) -> None:
        """Commit the run's end; forget its marker once every record of the build is committed (else the
        next build records the run's end)."""
        self.flush()
        if not self.store_failures:
            clear_marker(self.home, run_id)


def _open_run(
    request: BuildRequest,
    run_id: str,
    records: _RunRecords,
    telemetry: Telemetry,
    trace_id: str,
    *,
    settings: ExecutorSettings,
    waited_s: float,
) -> DataFusionRun:
    """Start the run envelope (with the build's settings and telemetry configuration) and its marker."""
    metadata = {**_run_metadata(request, trace_id, settings), "waited_for_lock_s": round(waited_s, 3)}
    metadata["engine"] = effective_settings(request.engine())
    run = start_run(label=request.spec.label, sink=records.sink, run_id=run_id, metadata=metadata)
    write_marker(request.home, run_id=run_id, label=run.label, start_time_unix_ms=run.start_time_unix_ms)
    emit(records.sink, _telemetry_config_event(run_id, telemetry, trace_id))
    records.flush()
    return run


def _cancelled_before_job(
    request: BuildRequest, run: DataFusionRun, records: _RunRecords, cancel: CancelScope
) -> BuildOutcome:
    """The outcome of a build cancelled after its run was opened but before its job started."""
    run = finish_run(
        run, sink=records.sink, status=RunStatus.CANCELLED, metadata={"cancelled_by": cancel.reason}
    )
    failure = records.flush()
    if failure is None:
        clear_marker(request.home, run.run_id)
    report = write_run_report(
        request.home, run.run_id, label=request.spec.label, baseline=request.spec.baseline
    )
    return BuildOutcome(
        run_id=run.run_id,
        success=False,
        report_path=report.path,
        duration_ms=run.duration_ms,
        store_failures=[] if failure is None else [failure],
        cancelled_by=cancel.reason,
        cancel_signal=cancel.signum,
    )


def _cancelled_during_job(
    cancel: CancelScope, result: JobResult, dagster: DagsterRunWatch
) -> CancelScope | None:
    """``cancel`` when it stopped the job: asked before the job ended, and the job did not finish anyway
    (a later request only shortens what is left: the record and the report)."""
    if not cancel.is_set() or result.success:
        return None
    dagster.settle_cancelled(cancel)
    return cancel


def _finish_run(
    run: DataFusionRun, records: _RunRecords, job: JobEnding, *, stopped: CancelScope | None
) -> DataFusionRun:
    """Record the run's end: cancelled, completed, or failed with its failed steps' root causes."""
    metadata: dict[str, Any] = {"dagster_run_id": job.dagster_run_id, "failed_checks": job.failed_checks}
    if stopped is not None:
        metadata["cancelled_by"] = stopped.reason
    status, error = _ending(job, stopped)
    run = finish_run(run, sink=records.sink, status=status, metadata=metadata, error=error)
    records.close(run.run_id)
    return run


def _ending(job: JobEnding, stopped: CancelScope | None) -> tuple[RunStatus, BaseException | None]:
    """How the run ended: cancelled, completed, or failed with its failed steps' root causes."""
    if stopped is not None:
        return RunStatus.CANCELLED, None
    return (RunStatus.COMPLETED if job.success else RunStatus.FAILED), job.run_error()


def _job_outcome(
    run: DataFusionRun,
    job: JobEnding,
    report: RenderedReport,
    store_failures: list[str],
    *,
    stopped: CancelScope | None,
) -> BuildOutcome:
    return BuildOutcome(
        run_id=run.run_id,
        dagster_run_id=job.dagster_run_id,
        success=job.success,
        report_path=report.path,
        failed_steps=job.failed_steps,
        step_failures=job.step_failures,
        failed_gates=[g.name for g in report.gates if not g.passed],
        failed_checks=job.failed_checks,
        duration_ms=run.duration_ms,
        store_failures=store_failures,
        cancelled_by=stopped.reason if stopped is not None else None,
        cancel_signal=stopped.signum if stopped is not None else None,
    )


def _close_abandoned_runs(home: ProjectHome, records: _RunRecords) -> None:
    """Record runs whose process died (SIGKILL) as failed, in the store and in the Dagster instance."""
    abandoned = record_abandoned_runs(home, records.sink)
    if not abandoned:
        return
    records.flush()
    instance = instance_for(home)
    for marker in abandoned:
        dagster_run = instance.get_run_by_id(marker.run_id)
        if dagster_run is not None and not dagster_run.is_finished:
            instance.report_run_failed(dagster_run)
        if not records.store_failures:
            clear_marker(home, marker.run_id)


def _export_failure_events(run_id: str, telemetry: Telemetry, trace_id: str) -> list[DiagnosticEvent]:
    """One warn event per signal whose exporter failed batches in this run (e.g. the endpoint refused)."""
    return [
        DiagnosticEvent(
            name=TELEMETRY_EXPORT_FAILED,
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


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """The executor of a build, and the Celery settings when it is ``celery``."""

    executor: Executor
    celery: CelerySettings | None = None

    def metadata(self) -> dict[str, Any]:
        """What the run envelope records (the Celery URLs redacted)."""
        found: dict[str, Any] = {"executor": self.executor.value}
        if self.celery is not None:
            found["celery"] = self.celery.snapshot()
        return found


def _executor_settings(executor: Executor, celery: CelerySettings | None) -> ExecutorSettings:
    if executor is not Executor.CELERY:
        return ExecutorSettings(executor)  # Celery settings given to another executor are not used
    require_dagster_celery()
    return ExecutorSettings(executor, celery or celery_settings(executor))


def _execute(
    request: BuildRequest,
    run_id: str,
    instance: dg.DagsterInstance,
    settings: ExecutorSettings,
    *,
    progress: bool,
    max_concurrent: int | None,
) -> JobResult:
    if settings.celery is not None:
        return _execute_celery(request, run_id, instance, settings.celery)
    if settings.executor is Executor.MULTIPROCESS:
        run_config = _multiprocess_run_config(max_concurrent)
        return _execute_job(request, run_id, instance, run_config=run_config)
    return _execute_in_process(request, run_id, instance, progress=progress)


def step_resource(request: BuildRequest, *, progress: bool = False) -> CodeAnatomyResource:
    """The resource of a build's steps (paths and switches only: no credentials)."""
    return CodeAnatomyResource(
        home=str(request.home.root),
        lake=request.home.lake_uri or "",
        capture_diagnostics=request.capture,
        progress=progress,
        memory_limit=request.memory_limit or 0,
        full_rebuild=request.full,
        html_in_step=False,  # run_build writes the final report, HTML included, after the job
    )


def _execute_in_process(
    request: BuildRequest, run_id: str, instance: dg.DagsterInstance, *, progress: bool
) -> dg.ExecuteInProcessResult:
    job = build_definitions(request.spec, step_resource(request, progress=progress)).resolve_job_def(JOB_NAME)
    with quiet_sqlite_commits(request.home.dagster_home):  # no fsync per Dagster event (see the module)
        return job.execute_in_process(
            instance=instance,
            run_id=run_id,
            raise_on_error=False,
            run_config=_QUIET_LOGS,
            tags={LAUNCHED_BY_TAG: "codeanatomy"},
        )


def _execute_celery(
    request: BuildRequest, run_id: str, instance: dg.DagsterInstance, celery: CelerySettings
) -> dg.JobExecutionResult:
    """The job on Celery workers: the URLs reach the executor through the environment (see the module)."""
    with celery.exported(), warnings.catch_warnings():
        # dagster-celery registers its task again for every step it submits: the same callable, harmless
        warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")
        return _execute_job(
            request,
            run_id,
            instance,
            run_config={**_QUIET_LOGS, **celery.run_config()},
            executor=Executor.CELERY,
        )


def _execute_job(
    request: BuildRequest,
    run_id: str,
    instance: dg.DagsterInstance,
    *,
    run_config: dict[str, Any],
    executor: Executor | None = None,
) -> dg.JobExecutionResult:
    """The job run by ``dagster.execute_job``: steps in other processes, each rebuilding the job."""
    kwargs = request.job_kwargs() | ({"executor": executor.value} if executor is not None else {})
    job = dg.build_reconstructable_job(
        __name__, reconstruct_build_job.__name__, reconstructable_kwargs=kwargs
    )
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


def _multiprocess_run_config(max_concurrent: int | None) -> dict[str, Any]:
    # Forked from a server that imported this module: the imports are paid once, not per step (spawn):
    # the fixture build took 18 s instead of 53 s.
    multiprocess: dict[str, Any] = {"start_method": {"forkserver": {"preload_modules": [__name__]}}}
    if max_concurrent is not None:
        multiprocess["max_concurrent"] = max_concurrent
    return {**_QUIET_LOGS, "execution": {"config": {"multiprocess": multiprocess}}}


def _run_metadata(request: BuildRequest, trace_id: str, settings: ExecutorSettings) -> dict[str, Any]:
    spec = request.spec
    return {
        "spec": spec.source,
        "source": spec.extract.source if spec.extract else None,
        "home": str(request.home.root),
        "lake": request.home.lake,
        "datasets": [d.name for d in spec.datasets],
        "plans": [p.name for p in spec.plans],
        "capture_diagnostics": request.capture,
        "rebuild": "full" if request.full else "incremental",
        **settings.metadata(),
        "trace_id": trace_id,
    }


def _telemetry_config_event(run_id: str, telemetry: Telemetry, trace_id: str) -> DiagnosticEvent:
    return DiagnosticEvent(
        name=TELEMETRY_CONFIG,
        run_id=run_id,
        severity=Severity.INFO,
        category=Category.TELEMETRY,
        kind=EventKind.ARTIFACT,
        payload=telemetry.config.snapshot(),
        trace_id=trace_id,
    )
