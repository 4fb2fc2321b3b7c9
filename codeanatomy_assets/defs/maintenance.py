"""The maintenance job and its sensor (only for a spec with a ``[maintenance]`` table).

``delta_maintenance`` is an asset downstream of every table the pipeline writes: materializing it treats
each one whose layout crosses a ``[maintenance]`` threshold (:mod:`codeanatomy_assets.output_maintenance`).
The ``codeanatomy_maintenance`` job materializes it; the ``codeanatomy_maintenance_sensor`` reads the
tables' layout every ``sensor_interval_s`` and requests the job when one needs care, once per table state
(the run key names each table's version).
"""

from typing import Final

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from codeanatomy_assets import output_maintenance
from codeanatomy_assets.defs.resources import CodeAnatomyResource
from codeanatomy_assets.spec import PipelineSpec

MAINTENANCE_ASSET: Final = "delta_maintenance"
MAINTENANCE_GROUP: Final = "maintenance"
MAINTENANCE_JOB: Final = "codeanatomy_maintenance"
MAINTENANCE_SENSOR: Final = "codeanatomy_maintenance_sensor"


def maintenance_asset(spec: PipelineSpec) -> dg.AssetsDefinition:
    """The asset whose materialization treats the output tables that need it."""
    outputs = output_maintenance.own_output_names(spec)

    @dg.asset(
        name=MAINTENANCE_ASSET,
        group_name=MAINTENANCE_GROUP,
        deps=outputs,
        kinds={"delta"},
        description="Compacts, vacuums and checkpoints the pipeline's own tables past [maintenance] limits",
    )
    def delta_maintenance(
        context: dg.AssetExecutionContext, codeanatomy: CodeAnatomyResource
    ) -> dg.MaterializeResult:
        with codeanatomy.step(context) as step:
            cared = output_maintenance.maintain_outputs(spec, codeanatomy.project_home(), step)
        steps = [o for c in cared for o in c.outcomes]
        return dg.MaterializeResult(
            metadata={
                "tables_treated": dg.MetadataValue.int(len(cared)),
                "steps_applied": dg.MetadataValue.int(sum(o.status == "applied" for o in steps)),
                "steps_failed": dg.MetadataValue.int(sum(o.status != "applied" for o in steps)),
                "care": dg.MetadataValue.json([c.to_row() for c in cared]),
            }
        )

    return delta_maintenance


def maintenance_sensor(spec: PipelineSpec, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    """Requests the maintenance job when an output table's layout crosses a threshold."""
    interval = spec.maintenance.sensor_interval_s if spec.maintenance is not None else 3600

    @dg.sensor(
        name=MAINTENANCE_SENSOR,
        job=job,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Reads the output tables' layout; runs the maintenance job when one needs care",
    )
    def codeanatomy_maintenance_sensor(
        context: dg.SensorEvaluationContext, codeanatomy: CodeAnatomyResource
    ) -> dg.SensorResult | dg.SkipReason:
        needing = output_maintenance.tables_needing_care(spec, codeanatomy.project_home())
        if not needing:
            return dg.SkipReason("no output table crosses a [maintenance] threshold")
        state = ",".join(f"{table.name}@{layout.version}" for table, layout in needing)
        context.log.info(f"maintenance needed: {state}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=state, tags={"codeanatomy/maintenance": state})]
        )

    return codeanatomy_maintenance_sensor
