"""A build's OpenLineage run events, built from what is known of the job and of each plan.

The job is the whole build: namespace from the configuration, name the pipeline's label, run id the build's
run id (a UUID; another id is mapped to one by ``uuid5``). Each plan is a job of its own, named
``<label>.<plan>``, whose run id is ``uuid5(<the build's run id>, <plan>)`` (the same plan of the same
build always gets the same id, in any process) and whose ``parent`` facet points at the build's run.

Facets (standard keys): run ``processing_engine`` (DataFusion, its version, this package's version as the
adapter's), ``parent`` (plans), ``errorMessage`` (FAIL and ABORT), and the custom ``codeanatomy_*`` run facets
(:mod:`~codeanatomy_assets.lineage.facets`); job ``jobType`` and ``sql`` (plans); each dataset
``dataSource``, ``storage``, ``version`` and ``schema`` when known, inputs' ``inputStatistics`` (what the
scans read) and the output's ``outputStatistics`` (rows, bytes and files written).
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Final

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    InputDatasetFacet,
    JobFacet,
    OutputDatasetFacet,
    RunFacet,
    error_message_run,
    input_statistics_input_dataset,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    sql_job,
)

from codeanatomy_assets.lineage.datasets import dataset_facets
from codeanatomy_assets.lineage.facets import (
    DELTA_LOG_HEALTH,
    PLAN_SKIPPED,
    PROVIDER_MODE,
    SCAN_PRUNING,
    log_health_facet,
    owned,
    package_version,
    plan_skipped_facet,
    producer,
    provider_mode_facet,
    scan_pruning_facet,
)
from codeanatomy_assets.lineage.facts import InputFacts, OutputFacts, PlanFacts

INTEGRATION: Final = "CODEANATOMY"
_RUN_ID_NAMESPACE: Final = uuid.UUID("6f1f4ad2-5b5e-4c55-9a61-0d0b5c2d8a17")
"""The ``uuid5`` namespace of a build run id that is not a UUID itself."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LineageJob:
    """A job and one run of it; a plan's has its build's as ``parent``."""

    namespace: str
    name: str
    run_id: str
    parent: LineageJob | None = None

    @classmethod
    def build(cls, namespace: str, label: str, build_run_id: str) -> LineageJob:
        """The job of a whole build; its run id is the build's (a UUID), else a UUID derived from it."""
        try:
            run_id = str(uuid.UUID(build_run_id))
        except ValueError:
            run_id = str(uuid.uuid5(_RUN_ID_NAMESPACE, build_run_id))
        return cls(namespace=namespace, name=label, run_id=run_id)

    def plan(self, plan: str) -> LineageJob:
        """The job of one plan of this build, its run id derived from the build's."""
        run_id = str(uuid.uuid5(uuid.UUID(self.run_id), plan))
        return LineageJob(namespace=self.namespace, name=f"{self.name}.{plan}", run_id=run_id, parent=self)


def error_facet(exc: BaseException, redact: Callable[[str], str]) -> error_message_run.ErrorMessageRunFacet:
    """The ``errorMessage`` of a failure: its message and Python stack trace, secrets redacted."""
    message = f"{type(exc).__name__}: {exc}"
    trace = "".join(traceback.format_exception(exc)) if exc.__traceback__ is not None else None
    return owned(
        error_message_run.ErrorMessageRunFacet(
            message=redact(message), programmingLanguage="python", stackTrace=redact(trace) if trace else None
        )
    )


def job_event(
    state: RunState,
    job: LineageJob,
    *,
    error: error_message_run.ErrorMessageRunFacet | None = None,
    event_time: datetime | None = None,
) -> RunEvent:
    """A run event of the whole build (at ``event_time``, else now)."""
    return _event(state, job, _run_facets(job, error), job_type="JOB", event_time=event_time)


def plan_event(
    state: RunState,
    job: LineageJob,
    *,
    sql: str,
    facts: PlanFacts,
    error: error_message_run.ErrorMessageRunFacet | None = None,
) -> RunEvent:
    """A run event of one plan: its inputs and output with what is known of them, and its run facets."""
    facets = _run_facets(job, error)
    if facts.scan_units:
        facets[SCAN_PRUNING] = scan_pruning_facet(facts.scan_units)
    if facts.skipped is not None:
        facets[PLAN_SKIPPED] = plan_skipped_facet(facts.skipped)
    return _event(
        state,
        job,
        facets,
        job_type="QUERY",
        job_facets={"sql": owned(sql_job.SQLJobFacet(query=sql, dialect="datafusion"))},
        inputs=[_input(i) for i in facts.inputs],
        outputs=[_output(facts.output)],
    )


def _event(
    state: RunState,
    job: LineageJob,
    run_facets: dict[str, RunFacet],
    *,
    job_type: str,
    job_facets: dict[str, JobFacet] | None = None,
    inputs: list[InputDataset] | None = None,
    outputs: list[OutputDataset] | None = None,
    event_time: datetime | None = None,
) -> RunEvent:
    kind = owned(
        job_type_job.JobTypeJobFacet(processingType="BATCH", integration=INTEGRATION, jobType=job_type)
    )
    return RunEvent(
        eventType=state,
        eventTime=(event_time or datetime.now(UTC)).isoformat(),
        run=Run(runId=job.run_id, facets=run_facets),
        job=Job(namespace=job.namespace, name=job.name, facets={"jobType": kind, **(job_facets or {})}),
        inputs=inputs or [],
        outputs=outputs or [],
        producer=producer(),
    )


def _run_facets(job: LineageJob, error: error_message_run.ErrorMessageRunFacet | None) -> dict[str, RunFacet]:
    facets: dict[str, RunFacet] = {"processing_engine": _engine_facet()}
    if job.parent is not None:
        facets["parent"] = _parent_facet(job.parent)
    if error is not None:
        facets["errorMessage"] = error
    return facets


def _engine_facet() -> processing_engine_run.ProcessingEngineRunFacet:
    return owned(
        processing_engine_run.ProcessingEngineRunFacet(
            version=_datafusion_version(), name="DataFusion", openlineageAdapterVersion=package_version()
        )
    )


@cache
def _datafusion_version() -> str:
    try:
        return version("datafusion")
    except PackageNotFoundError:
        return "unknown"


def _parent_facet(parent: LineageJob) -> parent_run.ParentRunFacet:
    return owned(
        parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent.run_id),
            job=parent_run.Job(namespace=parent.namespace, name=parent.name),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=parent.run_id),
                job=parent_run.RootJob(namespace=parent.namespace, name=parent.name),
            ),
        )
    )


def _input(facts: InputFacts) -> InputDataset:
    facets = dataset_facets(facts.identity, version=facts.version, schema=facts.schema)
    if facts.health is not None:
        facets[DELTA_LOG_HEALTH] = log_health_facet(facts.health.payload, facts.health.severity.value)
    input_facets: dict[str, InputDatasetFacet] = {}
    if facts.registered is not None:
        input_facets[PROVIDER_MODE] = provider_mode_facet(facts.registered)
    if facts.read is not None:
        input_facets["inputStatistics"] = owned(
            input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                rowCount=facts.read.rows, size=facts.read.bytes, fileCount=facts.read.files
            )
        )
    return InputDataset(
        namespace=facts.identity.namespace, name=facts.identity.name, facets=facets, inputFacets=input_facets
    )


def _output(facts: OutputFacts) -> OutputDataset:
    output_facets: dict[str, OutputDatasetFacet] = {}
    if facts.written is not None:
        output_facets["outputStatistics"] = owned(
            output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=facts.written.rows, size=facts.written.bytes, fileCount=facts.written.files
            )
        )
    return OutputDataset(
        namespace=facts.identity.namespace,
        name=facts.identity.name,
        facets=dataset_facets(facts.identity, version=facts.version, schema=facts.schema),
        outputFacets=output_facets,
    )
