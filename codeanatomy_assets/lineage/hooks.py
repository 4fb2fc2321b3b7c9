"""Where a build calls its lineage: around the job (``runner.run_build``; for a run launched from Dagster,
where its run envelope is recorded: ``defs/envelope.py``) and each plan step (the Dagster plan asset around
``pipeline.run_plan``).

Each hook resolves the configuration in its own process (the environment and the spec's ``[lineage]``,
:mod:`~codeanatomy_assets.lineage.config`), so plan steps in the multiprocess executor's processes emit too.
Without a configuration a hook does nothing, and the OpenLineage client is not even imported
(:mod:`~codeanatomy_assets.lineage.runs` does the work).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.runs import RunStatus
from codeanatomy_assets.diagnostics.sinks import DiagnosticsSink, emit
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.lineage.config import LineageConfig
from codeanatomy_assets.spec import PipelineSpec
from codeanatomy_assets.step import StepDiagnostics

if TYPE_CHECKING:
    from codeanatomy_assets.lineage.emitter import Report
    from codeanatomy_assets.pipeline import PlanOutcome


@dataclass(slots=True)
class PlanLineage:
    """One plan step's lineage; :meth:`done` hands it the plan's outcome for the COMPLETE event."""

    outcome: PlanOutcome | None = None

    def done(self, outcome: PlanOutcome) -> PlanOutcome:
        self.outcome = outcome
        return outcome


@dataclass(slots=True)
class BuildLineage:
    """The build job's lineage; :meth:`ended` sends its COMPLETE, FAIL or ABORT (once)."""

    end: Callable[[RunStatus, BaseException | None], None] | None = None
    finished: bool = False

    def ended(self, status: RunStatus, error: BaseException | None = None) -> None:
        """The build's end (``error``: why it failed, for the ``errorMessage`` facet)."""
        if not self.finished:
            self.finished = True
            if self.end is not None:
                self.end(status, error)


@contextmanager
def plan_run(
    spec: PipelineSpec, home: ProjectHome, step: StepDiagnostics, name: str
) -> Iterator[PlanLineage]:
    """START of plan ``name`` now; COMPLETE (with its datasets and figures) when the body returns, FAIL
    (ABORT when interrupted) with the error when it raises."""
    config = LineageConfig.resolve(spec.lineage, os.environ)
    if config is None:
        yield PlanLineage()
        return
    from codeanatomy_assets.lineage.runs import plan_events

    with plan_events(config, spec, home, step, name) as lineage:
        yield lineage


@contextmanager
def build_run(spec: PipelineSpec, home: ProjectHome, run_id: str, report: Report) -> Iterator[BuildLineage]:
    """START of the build's job now; its end when the body calls :meth:`BuildLineage.ended` (else COMPLETE
    when the body returns, FAIL or ABORT when it raises)."""
    config = LineageConfig.resolve(spec.lineage, os.environ)
    if config is None:
        yield BuildLineage()
        return
    from codeanatomy_assets.lineage.runs import build_events

    with build_events(config, spec, home, run_id, report) as lineage:
        yield lineage


def record_job_run(
    spec: PipelineSpec,
    home: ProjectHome,
    run_id: str,
    report: Report,
    *,
    started_unix_ms: int | None,
    status: RunStatus,
    error: BaseException | None = None,
) -> None:
    """A build's job that :func:`build_run` did not bracket (a run launched from Dagster): its START,
    dated when the run started, and its end, both sent once the end is known."""
    config = LineageConfig.resolve(spec.lineage, os.environ)
    if config is None:
        return
    from codeanatomy_assets.lineage.runs import send_job_run

    started = datetime.fromtimestamp(started_unix_ms / 1000, UTC) if started_unix_ms else None
    send_job_run(config, spec, home, run_id, report, started, status, error)


def sink_report(sink: DiagnosticsSink, run_id: str, trace_id: str | None) -> Report:
    """A report recording diagnostic events on ``sink`` for run ``run_id`` (the runner's records)."""

    def report(**fields: Any) -> DiagnosticEvent:
        event = DiagnosticEvent(run_id=run_id, trace_id=trace_id, **fields)
        emit(sink, event)
        return event

    return report
