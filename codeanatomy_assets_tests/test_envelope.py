"""Runs launched without the CLI (the UI, a schedule) get a run envelope and, when they fail, a report."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from codeanatomy_assets import output_maintenance
from codeanatomy_assets.defs.definitions import JOB_NAME, build_definitions
from codeanatomy_assets.defs.envelope import FAILED_RUN_SENSOR, LAUNCHED_BY_TAG
from codeanatomy_assets.defs.maintenance import MAINTENANCE_ASSET
from codeanatomy_assets.defs.resources import CodeAnatomyResource
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.runner import instance_for
from codeanatomy_assets.spec import load_builtin_spec, load_spec

FIXTURE = Path(__file__).parent / "fixtures" / "sample_tree"


def test_a_run_launched_by_dagster_records_its_envelope(tmp_path: Path) -> None:
    home = ProjectHome.resolve(tmp_path / "home")
    spec = load_builtin_spec().with_source(str(FIXTURE))
    defs = build_definitions(spec, CodeAnatomyResource(home=str(home.root)))
    result = defs.resolve_job_def(JOB_NAME).execute_in_process(instance=instance_for(home))
    assert result.success
    (run,) = home.diagnostics_store().read_runs(result.run_id)
    assert run["status"] == "completed"
    assert run["label"] == "codeanatomy_build"
    assert run["metadata"]["launched_by"] == "dagster"
    assert run["duration_ms"] >= 0
    assert "| completed |" in (home.reports / result.run_id / "run_diagnostics_report.md").read_text()


def test_a_failed_run_launched_by_dagster_gets_a_report_from_the_sensor(tmp_path: Path) -> None:
    home = ProjectHome.resolve(tmp_path / "home")
    config = tmp_path / "c.toml"
    config.write_text(
        f'[datasets.files]\nuri = "{tmp_path / "missing_table"}"\n[plans.p]\nsql = "select * from files"\n'
    )
    resource = CodeAnatomyResource(home=str(home.root))
    defs = build_definitions(load_spec(config), resource)
    instance = instance_for(home)
    result = defs.resolve_job_def(JOB_NAME).execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    sensor = defs.resolve_sensor_def(FAILED_RUN_SENSOR)
    context = dg.build_run_status_sensor_context(
        sensor_name=FAILED_RUN_SENSOR,
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"codeanatomy": resource},
    ).for_run_failure()
    sensor(context)
    (run,) = home.diagnostics_store().read_runs(result.run_id)
    assert run["status"] == "failed"
    assert run["error_type"].endswith("RunFailed")
    text = (home.reports / result.run_id / "run_diagnostics_report.md").read_text()
    assert "| failed |" in text
    assert "files" in text  # the dataset that could not be registered is in the report
    sensor(context)  # a second evaluation records nothing new
    assert [r["status"] for r in home.diagnostics_store().read_runs(result.run_id)] == ["failed"]


def _failed_run_of_the_asset_graph(
    tmp_path: Path, **tags: str
) -> tuple[dg.Definitions, dg.ExecuteInProcessResult, CodeAnatomyResource]:
    """A run of Dagster's implicit asset job (what the asset graph's Materialize and the automation sensor
    launch) over a dataset whose table is missing: it fails at the dataset."""
    config = tmp_path / "c.toml"
    config.write_text(
        f'[datasets.files]\nuri = "{tmp_path / "missing_table"}"\n[plans.p]\nsql = "select * from files"\n'
    )
    resource = CodeAnatomyResource(home=str(tmp_path / "home"))
    defs = build_definitions(load_spec(config), resource)
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance_for(ProjectHome.resolve(tmp_path / "home")),
        asset_selection=[dg.AssetKey("files"), dg.AssetKey("p")],
        raise_on_error=False,
        tags=tags,
    )
    assert not result.success and result.dagster_run.job_name != JOB_NAME
    return defs, result, resource


def _evaluate_failure_sensor(
    defs: dg.Definitions, result: dg.ExecuteInProcessResult, resource: CodeAnatomyResource
) -> None:
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    context = dg.build_run_status_sensor_context(
        sensor_name=FAILED_RUN_SENSOR,
        dagster_event=failure,
        dagster_instance=instance_for(resource.project_home()),
        dagster_run=result.dagster_run,
        resources={"codeanatomy": resource},
    ).for_run_failure()
    defs.resolve_sensor_def(FAILED_RUN_SENSOR)(context)


def test_a_failed_run_of_the_asset_graph_gets_a_report_from_the_sensor(tmp_path: Path) -> None:
    defs, result, resource = _failed_run_of_the_asset_graph(tmp_path)
    home = resource.project_home()
    assert not (home.reports / result.run_id).exists()  # the run stopped before any report
    _evaluate_failure_sensor(defs, result, resource)
    (run,) = home.diagnostics_store().read_runs(result.run_id)
    assert run["status"] == "failed"
    assert "| failed |" in (home.reports / result.run_id / "run_diagnostics_report.md").read_text()


def test_the_sensor_leaves_runs_of_the_cli_to_the_cli(tmp_path: Path) -> None:
    defs, result, resource = _failed_run_of_the_asset_graph(tmp_path, **{LAUNCHED_BY_TAG: "codeanatomy"})
    _evaluate_failure_sensor(defs, result, resource)
    home = resource.project_home()
    assert home.diagnostics_store().read_runs(result.run_id) == []
    assert not (home.reports / result.run_id).exists()


def test_the_sensor_leaves_a_failed_maintenance_run_of_the_asset_graph_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Materializing only ``delta_maintenance`` from the asset graph runs under the implicit asset job;
    its failure (injected here) is not a build's: no run row, no build report."""

    def fail(*_: object, **__: object) -> None:
        raise RuntimeError("maintenance failed")

    monkeypatch.setattr(output_maintenance, "maintain_outputs", fail)
    config = tmp_path / "c.toml"
    config.write_text(
        '[datasets.files]\nuri = "files"\n[plans.p]\nsql = "select * from files"\n[maintenance]\n'
    )
    resource = CodeAnatomyResource(home=str(tmp_path / "home"))
    home = resource.project_home()
    defs = build_definitions(load_spec(config), resource)
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance_for(home), asset_selection=[dg.AssetKey(MAINTENANCE_ASSET)], raise_on_error=False
    )
    assert not result.success and result.dagster_run.job_name != JOB_NAME
    _evaluate_failure_sensor(defs, result, resource)
    assert home.diagnostics_store().read_runs(result.run_id) == []
    assert not (home.reports / result.run_id).exists()
