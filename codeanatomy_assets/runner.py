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

The instance is the one configured by ``<home>/dagster/dagster.yaml``: written (SQLite storage) only when
absent, so a ``dagster.yaml`` of your own there (e.g. Postgres storage) is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import dagster as dg

from codeanatomy_assets.defs.definitions import JOB_NAME, build_definitions
from codeanatomy_assets.defs.factory import REPORT_ASSET
from codeanatomy_assets.defs.resources import RUN_ID_TAG, CodeAnatomyResource, use_telemetry
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.otel import OTelLogSink, Telemetry, TelemetryConfig, bootstrap_telemetry
from codeanatomy_assets.diagnostics.runs import finish_run, start_run
from codeanatomy_assets.diagnostics.sinks import FanoutSink, emit
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.extract.tree import discover
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.report import write_run_report
from codeanatomy_assets.spec import (
    BUILTIN_SPEC_NAME,
    STDLIB_SOURCE,
    PipelineSpec,
    load_builtin_spec,
    load_spec,
)

_DAGSTER_YAML = """\
# Written by codeanatomy: the persistent instance of this project home (runs appear in `dagster dev`).
telemetry:
  enabled: false
"""
_QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

JobResult = dg.ExecuteInProcessResult | dg.JobExecutionResult


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

    @classmethod
    def resolve(
        cls,
        *,
        source: Path | None = None,
        config: Path | None = None,
        home: Path | None = None,
        lake: str | None = None,
        capture: bool = True,
    ) -> BuildRequest:
        """Load and validate everything a build needs before anything is written.

        ``lake`` (else ``CODEANATOMY_LAKE_URI``) moves the datasets and the diagnostics store, e.g. to
        ``s3://bucket/prefix``; :mod:`codeanatomy_assets.home` says where its storage options come from.
        """
        spec = load_spec(config).with_source(str(source) if source is not None else None)
        if spec.extract is not None:
            discover(spec.extract.source_path())  # raises SourceTreeError before anything is written
        return cls(spec=spec, home=ProjectHome.resolve(home, lake=lake), capture=capture)

    def resource(self, *, progress: bool = False) -> CodeAnatomyResource:
        """The resource of this build's steps (paths and switches only: no credentials)."""
        return CodeAnatomyResource(
            home=str(self.home.root),
            lake=self.home.lake_uri or "",
            capture_diagnostics=self.capture,
            progress=progress,
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
        }


def reconstruct_build_job(
    *, spec: str, source: str | None, home: str, lake: str, capture: bool
) -> dg.JobDefinition:
    """The build job of a spec (``builtin:codeanatomy`` or a spec file), rebuilt in a step process.

    Module level so that Dagster can import it (``dagster.build_reconstructable_job``).
    """
    loaded = load_builtin_spec() if spec == BUILTIN_SPEC_NAME else load_spec(spec)
    resource = CodeAnatomyResource(home=home, lake=lake, capture_diagnostics=capture)
    return build_definitions(loaded.with_source(source), resource).resolve_job_def(JOB_NAME)


@dataclass(slots=True, kw_only=True)
class BuildOutcome:
    run_id: str
    success: bool
    report_path: Path
    dagster_run_id: str | None = None
    failed_steps: list[str] = field(default_factory=list)
    failed_gates: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    duration_ms: int | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.success and not self.failed_gates else 1

    def summary_lines(self) -> list[str]:
        lines = [f"run {self.run_id}: {'completed' if self.success else 'failed'} in {self.duration_ms} ms"]
        lines += [f"  failed step: {s}" for s in self.failed_steps]
        lines += [f"  failed check: {c}" for c in self.failed_checks]
        lines += [f"  failed gate: {g}" for g in self.failed_gates]
        return lines


def instance_for(home: ProjectHome) -> dg.DagsterInstance:
    """The persistent Dagster instance under ``<home>/dagster`` (created on first use)."""
    home.ensure()
    config = home.dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(_DAGSTER_YAML, encoding="utf-8")
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
    with telemetry.tracer.start_as_current_span(
        "codeanatomy build", attributes={"codeanatomy.run_id": run_id, "dagster.run_id": run_id}
    ) as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        metadata = _run_metadata(request, trace_id, executor)
        run = start_run(label=request.spec.label, sink=sink, run_id=run_id, metadata=metadata)
        emit(sink, _telemetry_config_event(run_id, telemetry, trace_id))
        store.flush()
        instance = instance_for(home)
        if executor is Executor.MULTIPROCESS:
            result: JobResult = _execute_multiprocess(request, run_id, instance, max_concurrent)
        else:
            result = _execute_in_process(request, run_id, instance, progress=progress)
        run = finish_run(
            run,
            sink=sink,
            status="completed" if result.success else "failed",
            metadata={"dagster_run_id": result.run_id},
            error=_first_error(result),
        )
        store.flush()
    report = write_run_report(home, run_id, label=request.spec.label)
    telemetry.force_flush()
    reported = _report_materialized(result)
    return BuildOutcome(
        run_id=run_id,
        dagster_run_id=result.run_id,
        success=result.success,
        report_path=report.path,
        failed_steps=_failed_steps(result)
        + ([] if reported else [f"{REPORT_ASSET} (not run: upstream failed)"]),
        failed_gates=[g.name for g in report.gates if not g.passed],
        failed_checks=_failed_checks(result),
        duration_ms=run.payload().get("duration_ms"),
    )


def _execute_in_process(
    request: BuildRequest, run_id: str, instance: dg.DagsterInstance, *, progress: bool
) -> dg.ExecuteInProcessResult:
    job = build_definitions(request.spec, request.resource(progress=progress)).resolve_job_def(JOB_NAME)
    return job.execute_in_process(
        instance=instance, run_id=run_id, raise_on_error=False, run_config=_QUIET_LOGS
    )


def _execute_multiprocess(
    request: BuildRequest, run_id: str, instance: dg.DagsterInstance, max_concurrent: int | None
) -> dg.JobExecutionResult:
    job = dg.build_reconstructable_job(
        __name__, reconstruct_build_job.__name__, reconstructable_kwargs=request.job_kwargs()
    )
    multiprocess: dict[str, Any] = {"start_method": {"forkserver": {"preload_modules": [__name__]}}}
    if max_concurrent is not None:
        multiprocess["max_concurrent"] = max_concurrent
    run_config = {**_QUIET_LOGS, "execution": {"config": {"multiprocess": multiprocess}}}
    with dg.execute_job(job, instance=instance, run_config=run_config, tags={RUN_ID_TAG: run_id}) as result:
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


def _failed_steps(result: JobResult) -> list[str]:
    return sorted({e.step_key or "" for e in result.all_events if e.is_step_failure})


def _failed_checks(result: JobResult) -> list[str]:
    failed = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                key = evaluation.asset_check_key
                failed.append(f"{key.asset_key.to_user_string()}:{key.name} ({evaluation.severity.value})")
    return sorted(failed)


def _first_error(result: JobResult) -> BaseException | None:
    """The first failed step as an exception whose class name is the step's error class (``error.type``)."""
    for event in result.all_events:
        if event.is_step_failure:
            info = event.step_failure_data.error
            # Dagster wraps the asset's own error (DagsterExecutionStepExecutionError): report the user's.
            while info is not None and info.cls_name.startswith("Dagster") and info.cause is not None:
                info = info.cause
            message = info.message.strip().splitlines()[0] if info and info.message else "step failed"
            # Dagster keeps only the class name of a step's error: rebuild a class of that name, so the
            # run envelope's error.type reads e.g. "PlanError" rather than a wrapper's name.
            error_class = type(
                info.cls_name if info else "StepFailure", (Exception,), {"__module__": "builtins"}
            )
            return error_class(f"step {event.step_key}: {message}")
    return None


def _report_materialized(result: JobResult) -> bool:
    return any(
        e.is_step_materialization and e.asset_key and e.asset_key.to_user_string() == REPORT_ASSET
        for e in result.all_events
    )
