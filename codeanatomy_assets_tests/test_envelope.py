"""Runs launched without the CLI (the UI, a schedule) get a run envelope and, when they fail, a report."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from codeanatomy_assets.defs.definitions import JOB_NAME, build_definitions
from codeanatomy_assets.defs.envelope import FAILED_RUN_SENSOR
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
