"""A pipeline with ``[maintenance]`` over its own outputs: the datasets carry the layout check, the sensor
requests the maintenance job when a threshold is crossed, and the job treats the tables (recorded as
diagnostics events) without changing their rows."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from codeanatomy_assets.build_outcome import BuildOutcome
from codeanatomy_assets.defs.definitions import build_definitions
from codeanatomy_assets.defs.maintenance import MAINTENANCE_JOB, MAINTENANCE_SENSOR
from codeanatomy_assets.defs.resources import CodeAnatomyResource
from codeanatomy_assets.delta.layout import LayoutFindingCode, read_table_layout
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.runner import BuildRequest, instance_for, run_build

FIXTURE = Path(__file__).parent / "fixtures" / "sample_tree"


@pytest.fixture(scope="module")
def built_twice(tmp_path_factory: pytest.TempPathFactory) -> tuple[BuildRequest, list[BuildOutcome]]:
    """Two full builds of the sample tree under ``checkpoint_lag_commits = 1``: every output table has two
    commits since its (absent) checkpoint, one past the threshold (an incremental build of an unchanged
    tree would rewrite nothing)."""
    root = tmp_path_factory.mktemp("maintained")
    config = root / "codeanatomy.toml"
    config.write_text(
        f'[extract]\nsource = "{FIXTURE}"\n'
        '[plans.module_count]\nsql = "select count(*) as n from source_files"\n'
        "[maintenance]\ncheckpoint_lag_commits = 1\nsensor_interval_s = 60\n"
    )
    request = BuildRequest.resolve(config=config, home=root / "home", full=True)
    return request, [run_build(request, run_id=str(uuid.uuid4())) for _ in range(2)]


def _rows(uri: str) -> list[tuple[object, ...]]:
    return sorted(tuple(r.values()) for r in DeltaTable(uri).to_pyarrow_table().to_pylist())


def test_datasets_carry_the_layout_check_and_figures(
    built_twice: tuple[BuildRequest, list[BuildOutcome]],
) -> None:
    request, outcomes = built_twice
    assert all(o.success for o in outcomes), [o.summary_lines() for o in outcomes]
    assert "source_files:delta_layout_healthy (WARN)" in outcomes[1].failed_checks
    instance = instance_for(request.home)
    event = instance.get_latest_materialization_event(dg.AssetKey("source_files"))
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    layout = read_table_layout(request.home.dataset_uri("source_files"))
    assert metadata["layout/file_count"].value == layout.file_count
    assert metadata["layout/commits_since_checkpoint"].value == 2
    checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("source_files"), "delta_layout_healthy")]
    )
    evaluation = next(iter(checks.values())).event.dagster_event.event_specific_data  # type: ignore[union-attr]
    assert evaluation.passed is False and "checkpoint_lag" in evaluation.metadata["explanation"].value


def test_sensor_requests_the_job_and_the_job_treats_the_tables(
    built_twice: tuple[BuildRequest, list[BuildOutcome]],
) -> None:
    request, _ = built_twice
    home: ProjectHome = request.home
    resource = CodeAnatomyResource(home=str(home.root), lake=home.lake_uri or "")
    defs = build_definitions(request.spec, resource)
    instance = instance_for(home)
    sensor = defs.resolve_sensor_def(MAINTENANCE_SENSOR)
    with dg.build_sensor_context(instance=instance, resources={"codeanatomy": resource}) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult) and len(result.run_requests or []) == 1
    assert "module_count@1" in (result.run_requests or [])[0].run_key  # type: ignore[operator]

    plan_uri = home.dataset_uri("module_count")
    rows = _rows(plan_uri)
    run = defs.resolve_job_def(MAINTENANCE_JOB).execute_in_process(instance=instance)
    assert run.success
    layout = read_table_layout(plan_uri, thresholds=request.spec.layout_thresholds)
    assert LayoutFindingCode.CHECKPOINT_LAG not in {f.code for f in layout.findings}
    assert any(Path(plan_uri, "_delta_log").glob("*.checkpoint.parquet"))
    assert _rows(plan_uri) == rows
    applied = home.diagnostics_store().read_events(run_id=run.run_id, names=["delta_maintenance_v1"])
    assert {e.code for e in applied} == {"maintenance_applied"}
    assert {e.dataset for e in applied} >= {"module_count", "source_files"}

    with dg.build_sensor_context(instance=instance, resources={"codeanatomy": resource}) as context:
        assert isinstance(sensor(context), dg.SkipReason)
