"""The run events of a build's job and of each plan step, sent around them (the hooks call these once a
configuration is resolved: :mod:`~codeanatomy_assets.lineage.hooks`).

Nothing here fails a build: an event that cannot be built or sent, or a figure that cannot be read, is a
warn diagnostic (``openlineage_emit_failed_v1``, category ``telemetry``) and the build goes on. A plan step
that raises gets FAIL (ABORT when interrupted: a cancelled build) and its error goes on up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Final

from openlineage.client.event_v2 import RunEvent, RunState

from codeanatomy_assets.diagnostics.runs import RunStatus
from codeanatomy_assets.errors import exception_text
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.lineage import facts
from codeanatomy_assets.lineage.config import API_KEY_VARIABLE, LineageConfig
from codeanatomy_assets.lineage.emitter import LineageEmitter, Report
from codeanatomy_assets.lineage.events import LineageJob, error_facet, job_event, plan_event
from codeanatomy_assets.lineage.hooks import BuildLineage, PlanLineage
from codeanatomy_assets.spec import PipelineSpec
from codeanatomy_assets.step import StepDiagnostics

_ENDED: Final = {
    RunStatus.COMPLETED: RunState.COMPLETE,
    RunStatus.FAILED: RunState.FAIL,
    RunStatus.CANCELLED: RunState.ABORT,
}


@contextmanager
def plan_events(
    config: LineageConfig, spec: PipelineSpec, home: ProjectHome, step: StepDiagnostics, name: str
) -> Iterator[PlanLineage]:
    """START now; COMPLETE with the outcome the body hands over, or FAIL / ABORT when the body raises."""
    emitter = LineageEmitter(
        config=config, run_id=step.run_id, report=step.emit, secrets=_secrets(spec, home), plan=name
    )
    job = LineageJob.build(config.namespace, spec.label, step.run_id).plan(name)
    sql = spec.plan(name).sql
    lineage = PlanLineage()
    _send(
        emitter,
        RunState.START,
        lambda: plan_event(RunState.START, job, sql=sql, facts=facts.planned(spec, home, name)),
    )
    try:
        yield lineage
    except BaseException as exc:
        state, failure = (RunState.FAIL if isinstance(exc, Exception) else RunState.ABORT), exc
        _send(
            emitter,
            state,
            lambda: plan_event(
                state,
                job,
                sql=sql,
                facts=facts.planned(spec, home, name),
                error=error_facet(failure, emitter.redact),
            ),
        )
        raise
    _send(emitter, RunState.COMPLETE, lambda: _completed(lineage, emitter, job, spec, home, step, name))


def _completed(  # noqa: PLR0917 - the plan step's nouns, passed through once
    lineage: PlanLineage,
    emitter: LineageEmitter,
    job: LineageJob,
    spec: PipelineSpec,
    home: ProjectHome,
    step: StepDiagnostics,
    name: str,
) -> RunEvent:
    """The COMPLETE event: the plan's datasets as its outcome and the build's records describe them."""
    if lineage.outcome is None:
        known = facts.planned(spec, home, name)
    else:
        known = facts.completed(spec, home, step, name, lineage.outcome)
    if known.problems:
        problems = [emitter.redact(p) for p in known.problems]
        emitter.warn(
            "facet_failed",
            f"OpenLineage COMPLETE event of plan {name} sent without some figures: {'; '.join(problems)}",
            problems=problems,
        )
    return plan_event(RunState.COMPLETE, job, sql=spec.plan(name).sql, facts=known)


@contextmanager
def build_events(
    config: LineageConfig, spec: PipelineSpec, home: ProjectHome, run_id: str, report: Report
) -> Iterator[BuildLineage]:
    """START now; the end when the body says it (else COMPLETE, or FAIL / ABORT when the body raises)."""
    emitter = LineageEmitter(config=config, run_id=run_id, report=report, secrets=_secrets(spec, home))
    job = LineageJob.build(config.namespace, spec.label, run_id)

    def end(status: RunStatus, error: BaseException | None) -> None:
        state = _ENDED.get(status, RunState.FAIL)
        facet = error_facet(error, emitter.redact) if error is not None else None
        _send(emitter, state, lambda: job_event(state, job, error=facet))

    lineage = BuildLineage(end=end)
    _send(emitter, RunState.START, lambda: job_event(RunState.START, job))
    try:
        yield lineage
    except BaseException as exc:
        lineage.ended(RunStatus.FAILED if isinstance(exc, Exception) else RunStatus.CANCELLED, exc)
        raise
    lineage.ended(RunStatus.COMPLETED)


def send_job_run(  # noqa: PLR0917 - the run's nouns, passed through once
    config: LineageConfig,
    spec: PipelineSpec,
    home: ProjectHome,
    run_id: str,
    report: Report,
    started: datetime | None,
    status: RunStatus,
    error: BaseException | None,
) -> None:
    """The START (dated ``started``) and the end of a build's job, both sent now."""
    emitter = LineageEmitter(config=config, run_id=run_id, report=report, secrets=_secrets(spec, home))
    job = LineageJob.build(config.namespace, spec.label, run_id)
    _send(emitter, RunState.START, lambda: job_event(RunState.START, job, event_time=started))
    state = _ENDED.get(status, RunState.FAIL)
    facet = error_facet(error, emitter.redact) if error is not None else None
    _send(emitter, state, lambda: job_event(state, job, error=facet))


def _send(emitter: LineageEmitter, state: RunState, build: Callable[[], RunEvent]) -> None:
    """Build an event and send it; an event that cannot be built is a warn too."""
    try:
        event = build()
    except Exception as exc:  # noqa: BLE001 - lineage never fails a build: recorded as a warn
        text = emitter.redact(exception_text(exc, limit=400))
        emitter.warn(
            "event_failed", f"OpenLineage {state.value} event not built: {text}", event_type=state.value
        )
        return
    emitter.send(event)


def _secrets(spec: PipelineSpec, home: ProjectHome) -> dict[str, str]:
    """Every value an error text must not show: storage options (the datasets', the lake's), the API key."""
    values = [v for d in spec.datasets for v in d.storage_options.values()]
    values += list(home.storage_options.values())
    if os.environ.get(API_KEY_VARIABLE):
        values.append(os.environ[API_KEY_VARIABLE])
    return {f"secret_{i}": v for i, v in enumerate(values)}
