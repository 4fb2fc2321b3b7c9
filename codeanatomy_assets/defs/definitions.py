"""Compose the Dagster definitions of one pipeline spec (assets, job, schedule, resource)."""

import dagster as dg

from codeanatomy_assets.defs.changes_check import changes_check
from codeanatomy_assets.defs.envelope import failed_run_sensor
from codeanatomy_assets.defs.factory import build_assets
from codeanatomy_assets.defs.maintenance import (
    MAINTENANCE_GROUP,
    MAINTENANCE_JOB,
    maintenance_asset,
    maintenance_sensor,
)
from codeanatomy_assets.defs.resources import CodeAnatomyResource
from codeanatomy_assets.spec import PipelineSpec

JOB_NAME = "codeanatomy_build"
SCHEDULE_NAME = "codeanatomy_rebuild"
AUTOMATION_SENSOR = "codeanatomy_automation"


def build_definitions(
    spec: PipelineSpec,
    resource: CodeAnatomyResource | None = None,
    executor: dg.ExecutorDefinition | None = None,
) -> dg.Definitions:
    """Definitions for ``spec``: every asset, the ``codeanatomy_build`` job, its (stopped) schedule, the
    (stopped) sensor that evaluates the assets' automation conditions, the sensor that writes the report
    of a failed run launched from the UI, and, with ``[maintenance]``, the maintenance asset, job and
    sensor (``defs/maintenance.py``). ``executor`` replaces Dagster's default executor of the jobs (the
    Celery build: ``runner.reconstruct_build_job``)."""
    build = dg.AssetSelection.all() - dg.AssetSelection.groups(MAINTENANCE_GROUP)
    job = dg.define_asset_job(JOB_NAME, selection=build)
    schedule = dg.ScheduleDefinition(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule=spec.schedule,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Scheduled rebuild of the pipeline (stopped until you start it in the UI)",
    )
    assets, jobs = build_assets(spec), [job]
    ignored = frozenset({MAINTENANCE_JOB})
    sensors: list[dg.SensorDefinition] = [
        failed_run_sensor(spec, ignored_jobs=ignored),
        automation_sensor(build),
    ]
    if spec.maintenance is not None:
        maintenance = dg.define_asset_job(
            MAINTENANCE_JOB, selection=dg.AssetSelection.groups(MAINTENANCE_GROUP)
        )
        assets.append(maintenance_asset(spec))
        jobs.append(maintenance)
        sensors.append(maintenance_sensor(spec, maintenance))
    return dg.Definitions(
        assets=assets,
        asset_checks=[changes_check(spec)],
        jobs=jobs,
        schedules=[schedule],
        sensors=sensors,
        resources={"codeanatomy": resource or CodeAnatomyResource()},
        executor=executor,
    )


def automation_sensor(target: dg.AssetSelection) -> dg.AutomationConditionSensorDefinition:
    """The sensor that evaluates the build's automation conditions (extraction on the cron schedule, the
    rest eager): stopped until a user starts it in the UI, and then only while the daemon runs."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=target,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Materializes the build's assets by their automation conditions: extract_sources on "
        "the spec's schedule, every other asset when an upstream asset is materialized again (stopped "
        "until you start it; needs the Dagster daemon, which `dagster dev` runs)",
    )
