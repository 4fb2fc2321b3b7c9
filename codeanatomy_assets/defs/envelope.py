"""Runs launched from the Dagster UI get the same record as ``codeanatomy build`` runs.

The CLI brackets its runs with the run envelope itself. A run launched from the UI (or a schedule) has no
such wrapper: its report asset records the envelope when it finds none, and when such a run fails before
its report, this sensor (run by the daemon that ``dagster dev`` starts) records the failure and writes
the report saying where the run stopped; so it does for the runs of Dagster's implicit asset job (assets
materialized from the asset graph, or requested by the automation sensor). Either also sends the job's
OpenLineage START (dated when the run started) and its end, when lineage is configured
(:mod:`codeanatomy_assets.lineage.hooks`).
"""

import dagster as dg

from codeanatomy_assets.defs.resources import CodeAnatomyResource, diagnostics_run_id
from codeanatomy_assets.diagnostics.runs import DataFusionRun, RunStatus, finish_run, start_run
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.lineage.hooks import record_job_run, sink_report
from codeanatomy_assets.report.run_report import write_run_report
from codeanatomy_assets.spec import PipelineSpec

FAILED_RUN_SENSOR = "codeanatomy_failed_run_report"
LAUNCHED_BY_TAG = "codeanatomy/launched_by"
"""Set to ``codeanatomy`` on runs of ``codeanatomy build``, which record their own envelope."""


class RunFailed(Exception):  # noqa: N818 - the name is the error.type users read in the report
    """A Dagster run failed; the message names the failed step and its error."""


def failed_run_sensor(spec: PipelineSpec, *, ignored_jobs: frozenset[str]) -> dg.SensorDefinition:
    """The run-failure sensor of the code location's build runs: the build job's, and those of Dagster's
    implicit asset job (assets materialized from the UI's asset graph, or requested by the automation
    sensor). Runs of ``ignored_jobs`` (maintenance) and runs of ``codeanatomy build`` (which record their
    own end and report) are left alone."""

    @dg.run_failure_sensor(
        name=FAILED_RUN_SENSOR,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Records a failed build run in the diagnostics store and writes its report",
    )
    def codeanatomy_failed_run_report(
        context: dg.RunFailureSensorContext, codeanatomy: CodeAnatomyResource
    ) -> None:
        if _is_build_run(context.dagster_run, spec, ignored_jobs):
            _record_failed_run(context, codeanatomy, spec)

    return codeanatomy_failed_run_report


def _is_build_run(run: dg.DagsterRun, spec: PipelineSpec, ignored_jobs: frozenset[str]) -> bool:
    """Whether ``run`` is a build run this sensor records: not of an ignored job, not launched by
    ``codeanatomy build``, and (for a run of selected assets) materializing one of the build's assets,
    not only maintenance or checks."""
    if run.job_name in ignored_jobs or run.tags.get(LAUNCHED_BY_TAG) == "codeanatomy":
        return False
    if run.asset_selection:  # selected assets: a build run if one of them is the build's
        return not run.asset_selection.isdisjoint(_build_asset_keys(spec))
    return not run.asset_check_selection  # the whole job; a run of checks only is not a build


def _build_asset_keys(spec: PipelineSpec) -> set[dg.AssetKey]:
    """The keys of the build's assets: the extraction, the datasets, the plans and the report."""
    from codeanatomy_assets.defs.factory import EXTRACT_ASSET, REPORT_ASSET  # factory imports this module

    names = [d.name for d in spec.datasets] + [p.name for p in spec.plans] + [REPORT_ASSET]
    names += [EXTRACT_ASSET] if spec.extract is not None else []
    return {dg.AssetKey(name) for name in names}


def _record_failed_run(
    context: dg.RunFailureSensorContext, codeanatomy: CodeAnatomyResource, spec: PipelineSpec
) -> None:
    """Record the failed run's end (unless the CLI that ran it did) and write its report."""
    run_id = diagnostics_run_id(context.dagster_run)
    home = codeanatomy.project_home()
    store = home.diagnostics_store()
    rows = store.read_runs(run_id)
    if rows and rows[-1]["status"] != RunStatus.RUNNING:
        return  # the CLI that ran it recorded its end already
    started = rows[-1]["start_time_unix_ms"] if rows else _start_ms(context)
    run = DataFusionRun(run_id=run_id, label=spec.label, start_time_unix_ms=started)
    error = RunFailed(context.failure_event.message or "run failed")
    finish_run(run, sink=store, error=error)
    report = sink_report(store, run_id, None)
    record_job_run(spec, home, run_id, report, started_unix_ms=started, status=RunStatus.FAILED, error=error)
    store.flush()
    write_run_report(home, run_id, label=spec.label, baseline=spec.baseline)


def _start_ms(context: dg.RunFailureSensorContext) -> int:
    record = context.instance.get_run_record_by_id(context.dagster_run.run_id)
    start = record.start_time if record is not None and record.start_time else None
    return int(start * 1000) if start else 0


def record_envelope_if_missing(
    context: dg.AssetExecutionContext, codeanatomy: CodeAnatomyResource, spec: PipelineSpec
) -> None:
    """For a run launched from the UI: record its start and completion before its report is rendered.

    The report asset is the run's last step and runs only when everything upstream succeeded, so the run is
    complete when it gets here. Runs of ``codeanatomy build`` already have their envelope: nothing to do.
    """
    if context.run.tags.get(LAUNCHED_BY_TAG) == "codeanatomy":
        return
    run_id = diagnostics_run_id(context.run)
    home = codeanatomy.project_home()
    store = home.diagnostics_store()
    try:
        if not store.read_runs(run_id):
            _record_dagster_run(context, home, store, run_id, spec)
    except Exception as exc:  # noqa: BLE001 - the step's own diagnostics flush reports a failing store as a sink failure
        context.log.warning(f"could not record the run envelope in the diagnostics store: {exc}")


def _record_dagster_run(
    context: dg.AssetExecutionContext,
    home: ProjectHome,
    store: DeltaDiagnosticsStore,
    run_id: str,
    spec: PipelineSpec,
) -> None:
    """Record the start (from Dagster's run record) and the completion of a run launched from Dagster."""
    record = context.instance.get_run_record_by_id(context.run.run_id)
    started = int(record.start_time * 1000) if record is not None and record.start_time else None
    run = start_run(
        label=spec.label,
        sink=store,
        run_id=run_id,
        metadata={"launched_by": "dagster"},
        start_time_unix_ms=started,
    )
    finish_run(run, sink=store)
    report = sink_report(store, run_id, None)
    record_job_run(
        spec, home, run_id, report, started_unix_ms=run.start_time_unix_ms, status=RunStatus.COMPLETED
    )
    store.flush()
