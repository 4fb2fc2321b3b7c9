"""Compose the Dagster definitions of one pipeline spec (assets, job, schedule, resource)."""

import dagster as dg

from codeanatomy_assets.defs.envelope import failed_run_sensor
from codeanatomy_assets.defs.factory import build_assets
from codeanatomy_assets.defs.resources import CodeAnatomyResource
from codeanatomy_assets.spec import PipelineSpec

JOB_NAME = "codeanatomy_build"
SCHEDULE_NAME = "codeanatomy_rebuild"


def build_definitions(spec: PipelineSpec, resource: CodeAnatomyResource | None = None) -> dg.Definitions:
    """Definitions for ``spec``: every asset, the ``codeanatomy_build`` job, its (stopped) schedule, and
    the sensor that writes the report of a failed run launched from the UI."""
    job = dg.define_asset_job(JOB_NAME, selection=dg.AssetSelection.all())
    schedule = dg.ScheduleDefinition(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule=spec.schedule,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Scheduled rebuild of the pipeline (stopped until you start it in the UI)",
    )
    return dg.Definitions(
        assets=build_assets(spec),
        jobs=[job],
        schedules=[schedule],
        sensors=[failed_run_sensor(job, spec.label)],
        resources={"codeanatomy": resource or CodeAnatomyResource()},
    )
