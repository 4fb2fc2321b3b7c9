"""Running a whole build in-process against the project home's persistent Dagster instance.

Used by ``codeanatomy build`` and the end-to-end tests. The Dagster run id is the diagnostics run id, so the
UI, the store and the traces line up. The run envelope (``datafusion_run_started_v1`` / ``..._finished_v1``)
brackets the job; when the job fails before its report asset runs, the report is still written here and
says where the run stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from codeanatomy_assets.defs.definitions import JOB_NAME, build_definitions
from codeanatomy_assets.defs.factory import REPORT_ASSET
from codeanatomy_assets.defs.resources import CodeAnatomyResource, use_telemetry
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.otel import OTelLogSink, Telemetry, TelemetryConfig, bootstrap_telemetry
from codeanatomy_assets.diagnostics.runs import finish_run, start_run
from codeanatomy_assets.diagnostics.sinks import FanoutSink, emit
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.extract.tree import discover
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.report import write_run_report
from codeanatomy_assets.spec import PipelineSpec, load_spec

_DAGSTER_YAML = """\
# Written by codeanatomy: the persistent instance of this project home (runs appear in `dagster dev`).
telemetry:
  enabled: false
"""
_QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


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
        capture: bool = True,
    ) -> BuildRequest:
        """Load and validate everything a build needs before anything is written."""
        spec = load_spec(config).with_source(str(source) if source is not None else None)
        if spec.extract is not None:
            discover(spec.extract.source_path())  # raises SourceTreeError before anything is written
        return cls(spec=spec, home=ProjectHome.resolve(home), capture=capture)


@dataclass(slots=True, kw_only=True)
class BuildOutcome:
    run_id: str
    success: bool
    report_path: Path
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
) -> BuildOutcome:
    """Execute the job in-process; never raises for a failing step (the outcome says what failed).

    ``telemetry`` (e.g. with in-memory exporters) wins over ``telemetry_config``; without either, no
    telemetry is exported (the durable store still records everything).
    """
    home = request.home.ensure()
    telemetry = telemetry or bootstrap_telemetry(telemetry_config or TelemetryConfig.resolve({}))
    use_telemetry(telemetry)
    store = DeltaDiagnosticsStore(home.diagnostics)
    sink = FanoutSink([store, OTelLogSink(telemetry.logger_provider)])
    resource = CodeAnatomyResource(
        home=str(home.root), capture_diagnostics=request.capture, progress=progress
    )
    defs = build_definitions(request.spec, resource)
    job = defs.resolve_job_def(JOB_NAME)
    with telemetry.tracer.start_as_current_span(
        "codeanatomy build", attributes={"codeanatomy.run_id": run_id, "dagster.run_id": run_id}
    ) as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        run = start_run(
            label=request.spec.label, sink=sink, run_id=run_id, metadata=_run_metadata(request, trace_id)
        )
        emit(sink, _telemetry_config_event(run_id, telemetry, trace_id))
        store.flush()
        result = job.execute_in_process(
            instance=instance_for(home), run_id=run_id, raise_on_error=False, run_config=_QUIET_LOGS
        )
        failed_steps = _failed_steps(result)
        error = _first_error(result)
        run = finish_run(
            run,
            sink=sink,
            status="completed" if result.success else "failed",
            error=error,
        )
        store.flush()
    report = write_run_report(home, run_id, label=request.spec.label)
    telemetry.force_flush()
    reported = _report_materialized(result)
    return BuildOutcome(
        run_id=run_id,
        success=result.success,
        report_path=report.path,
        failed_steps=failed_steps + ([] if reported else [f"{REPORT_ASSET} (not run: upstream failed)"]),
        failed_gates=[g.name for g in report.gates if not g.passed],
        failed_checks=_failed_checks(result),
        duration_ms=run.payload().get("duration_ms"),
    )


def _run_metadata(request: BuildRequest, trace_id: str) -> dict[str, Any]:
    spec = request.spec
    return {
        "spec": spec.source,
        "source": spec.extract.source if spec.extract else None,
        "home": str(request.home.root),
        "datasets": [d.name for d in spec.datasets],
        "plans": [p.name for p in spec.plans],
        "capture_diagnostics": request.capture,
        "executor": "in_process",
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


def _failed_steps(result: dg.ExecuteInProcessResult) -> list[str]:
    return sorted({e.step_key or "" for e in result.all_events if e.is_step_failure})


def _failed_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    failed = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                key = evaluation.asset_check_key
                failed.append(f"{key.asset_key.to_user_string()}:{key.name} ({evaluation.severity.value})")
    return sorted(failed)


def _first_error(result: dg.ExecuteInProcessResult) -> BaseException | None:
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
            error_class = type(info.cls_name if info else "StepFailure", (Exception,), {"__module__": "builtins"})
            return error_class(f"step {event.step_key}: {message}")
    return None


def _report_materialized(result: dg.ExecuteInProcessResult) -> bool:
    return any(
        e.is_step_materialization and e.asset_key and e.asset_key.to_user_string() == REPORT_ASSET
        for e in result.all_events
    )
