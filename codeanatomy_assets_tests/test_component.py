"""The ``CodeAnatomyPipeline`` component: the repo is a dg project whose built-in build is a ``defs.yaml``,
a user's project declares a pipeline in one and materializes it, and a bad ``defs.yaml`` fails with the
TOML spec's own message."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from codeanatomy_assets.component import CodeAnatomyPipeline
from codeanatomy_assets.definitions import builtin_definitions
from codeanatomy_assets.defs.definitions import JOB_NAME
from codeanatomy_assets.errors import ConfigError
from codeanatomy_assets.spec import load_builtin_spec, load_spec
from codeanatomy_assets_tests.test_definitions import GOLDEN, _graph

REPO = Path(__file__).resolve().parent.parent
DG = Path(sys.executable).with_name("dg")

DEFINITIONS_PY = """from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def _dg(args: list[str], cwd: Path, tmp_path: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    """``dg ...`` in ``cwd`` with ``paths`` importable (the repo first: the package under test)."""
    pythonpath = os.pathsep.join(str(p) for p in (REPO, *paths))
    env = {**os.environ, "PYTHONPATH": pythonpath, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env["CODEANATOMY_HOME"] = str(tmp_path / "home")
    return subprocess.run(
        [str(DG), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


# --- the repo: a dg project whose built-in build is a defs.yaml ------------------------------------------


def test_dg_check_and_list_defs_in_the_repo(tmp_path: Path) -> None:
    check = _dg(["check", "defs"], REPO, tmp_path)
    assert check.returncode == 0, check.stderr[-3000:]
    assert "All component YAML validated successfully" in check.stdout + check.stderr
    assert "All definitions loaded successfully" in check.stdout + check.stderr
    listed = _dg(["list", "defs", "--json"], REPO, tmp_path)
    assert listed.returncode == 0, listed.stderr[-3000:]
    defs = json.loads(listed.stdout)
    golden = json.loads(GOLDEN.read_text())["assets"]
    assert sorted(a["asset_key"] for a in defs["assets"]) == sorted(golden)
    assert {a["source"] for a in defs["assets"]} == {"codeanatomy_assets/builtin/defs.yaml:6"}
    assert [j["name"] for j in defs["jobs"]] == [JOB_NAME]
    assert {c["key"] for c in defs["asset_checks"]} >= {
        "symbols:provider_mode",
        "calls:delta_protocol_compatible",
    }


def test_the_builtin_build_is_a_component_instance_with_the_golden_graph() -> None:
    """The code location's built-in build goes through the component tree (``builtin/defs.yaml``) and
    gives the golden asset graph; the spec it reads is ``load_builtin_spec()``'s."""
    defs = builtin_definitions()
    assert json.dumps(_graph(defs), indent=2, sort_keys=True) + "\n" == GOLDEN.read_text()
    pipelines = dg.ComponentTree.for_project(REPO).get_all_components(of_type=CodeAnatomyPipeline)
    assert pipelines
    assert {p.label for p in pipelines} == {"codeanatomy_build"}
    assert pipelines[0].spec(REPO / "codeanatomy_assets" / "builtin") == load_builtin_spec()


# --- a user's project -------------------------------------------------------------------------------------


def _user_project(root: Path, defs_yaml: str, name: str = "trips") -> Path:
    """A minimal dg project ``name`` under ``root`` (src layout) whose defs folder holds ``defs_yaml``
    (each in-process test its own name: Python keeps an imported package)."""
    package = root / "src" / name
    (package / "defs" / "pipeline").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\n\n[tool.dg]\ndirectory_type = "project"\n\n'
        f'[tool.dg.project]\nroot_module = "{name}"\n'
    )
    (package / "__init__.py").write_text("")
    (package / "defs" / "__init__.py").write_text("")
    (package / "definitions.py").write_text(DEFINITIONS_PY)
    (package / "defs" / "pipeline" / "defs.yaml").write_text(defs_yaml)
    return package / "defs" / "pipeline"


def _tables(root: Path) -> tuple[Path, Path]:
    trips, cities = root / "data" / "trips", root / "data" / "cities"
    write_deltalake(
        str(trips),
        pa.table(
            {"day": [1, 1, 2, 3, 3, 3], "city": ["a", "b", "a", "b", "b", "a"], "fare": [5, 7, 3, 4, 6, 8]}
        ),
    )
    write_deltalake(str(cities), pa.table({"city": ["a", "b"], "country": ["x", "y"]}))
    return trips, cities


USER_DEFS = """type: codeanatomy_assets.CodeAnatomyPipeline
attributes:
  label: trips_pipeline
  home: {home}
  datasets:
    - name: trips
      uri: {trips}
      description: One row per trip
    - name: cities
      uri: {cities}
      storage_options: {{ timeout: 30s }}
  plans:
    - name: country_fares
      sql_file: country_fares.sql
      description: Fares per country
    - name: busy_days
      sql: select day, count(*) as n from trips group by day
      timeout_s: 600
"""

COUNTRY_FARES = (
    "select c.country, sum(t.fare) as fares from trips t join cities c on t.city = c.city group by c.country"
)


@pytest.fixture(scope="module")
def user_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(project root, home) of a user's project declaring two external tables and two plans."""
    root = tmp_path_factory.mktemp("user_project")
    trips, cities = _tables(root)
    home = root / "home"
    folder = _user_project(root, USER_DEFS.format(home=home, trips=trips, cities=cities))
    (folder / "country_fares.sql").write_text(COUNTRY_FARES)
    return root, home


def test_user_pipeline_in_defs_yaml_materializes(
    user_project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, home = user_project
    monkeypatch.syspath_prepend(str(root / "src"))
    defs = dg.ComponentTree.for_project(root).build_defs()
    assert {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()} == {
        "trips",
        "cities",
        "country_fares",
        "busy_days",
        "run_diagnostics_report",
    }
    result = defs.resolve_job_def(JOB_NAME).execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
    assert materialized == {"trips", "cities", "country_fares", "busy_days", "run_diagnostics_report"}
    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    assert checks[("trips", "delta_protocol_compatible")].passed
    assert checks[("busy_days", "plan_phases_recorded")].passed
    assert checks[("busy_days", "no_change_since_last_run")].passed
    assert not [
        key for key, e in checks.items() if not e.passed and e.severity is dg.AssetCheckSeverity.ERROR
    ]
    fares = DeltaTable(str(home / "lake" / "country_fares")).to_pyarrow_table().sort_by("country")
    assert fares.to_pydict() == {"country": ["x", "y"], "fares": [16, 17]}
    days = DeltaTable(str(home / "lake" / "busy_days")).to_pyarrow_table().sort_by("day")
    assert days.to_pydict() == {"day": [1, 2, 3], "n": [2, 1, 3]}
    report = (home / "reports" / result.run_id / "run_diagnostics_report.md").read_text()
    assert "country_fares" in report and "busy_days" in report and "trips" in report


def test_user_project_with_dg(user_project: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = user_project
    listed = _dg(["list", "defs", "--json"], root, tmp_path, root / "src")
    assert listed.returncode == 0, listed.stderr[-3000:]
    defs = json.loads(listed.stdout)
    assert sorted(a["asset_key"] for a in defs["assets"]) == [
        "busy_days",
        "cities",
        "country_fares",
        "run_diagnostics_report",
        "trips",
    ]
    assert {a["source"] for a in defs["assets"]} == {"src/trips/defs/pipeline/defs.yaml:1"}


def test_defs_yaml_is_the_same_spec_as_the_toml(tmp_path: Path) -> None:
    """Every section, in both forms: the same spec (``codeanatomy build --config defs.yaml`` reads it)."""
    (tmp_path / "q.sql").write_text("select * from trips")
    (tmp_path / "codeanatomy.toml").write_text(
        '[pipeline]\nlabel = "p"\nschedule = "5 4 * * *"\nbaseline = "r1"\n'
        '[extract]\nsource = "src"\nworkers = 2\n'
        '[datasets.trips]\nuri = "data/trips"\nstorage_options = { AWS_REGION = "eu-west-1" }\n'
        '[plans.a]\nsql_file = "q.sql"\ntimeout_s = 5\n'
        '[plans.b]\nsql = "select 1 as x"\ninputs = ["a", "symbols"]\ndescription = "d"\n'
        '[engine]\nmemory_limit = "1GB"\ntarget_partitions = 2\n'
        'options = { "datafusion.execution.parquet.pushdown_filters" = true }\n'
        "[maintenance]\nsmall_file_mb = 8\n"
    )
    (tmp_path / "defs.yaml").write_text(
        "type: codeanatomy_assets.CodeAnatomyPipeline\nattributes:\n"
        "  label: p\n  schedule: 5 4 * * *\n  baseline: r1\n"
        "  extract: {source: src, workers: 2}\n"
        "  datasets:\n    - {name: trips, uri: data/trips, storage_options: {AWS_REGION: eu-west-1}}\n"
        "  plans:\n    - {name: a, sql_file: q.sql, timeout_s: 5}\n"
        "    - {name: b, sql: select 1 as x, inputs: [a, symbols], description: d}\n"
        "  engine:\n    memory_limit: 1GB\n    target_partitions: 2\n"
        "    options: {datafusion.execution.parquet.pushdown_filters: true}\n"
        "  maintenance: {small_file_mb: 8}\n"
    )
    toml, yaml = load_spec(tmp_path / "codeanatomy.toml"), load_spec(tmp_path / "defs.yaml")
    assert yaml.source == str(tmp_path / "defs.yaml")
    assert yaml == dataclasses.replace(toml, source=yaml.source)
    assert yaml.engine.options == {"datafusion.execution.parquet.pushdown_filters": "true"}


# --- bad input ---------------------------------------------------------------------------------------------

BAD_PLAN_YAML = """type: codeanatomy_assets.CodeAnatomyPipeline
attributes:
  datasets:
    - name: trips
      uri: {trips}
  plans:
    - name: busy_days
      sql: select day, count(*) from trip_log group by day
"""


def _config_error(exc: BaseException) -> ConfigError:
    """The ``ConfigError`` behind an exception Dagster wrapped (its cause or context, at any depth)."""
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, ConfigError):
        seen = seen.__cause__ or seen.__context__
    assert isinstance(seen, ConfigError), repr(exc)
    return seen


def test_invalid_plan_fails_with_the_toml_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trips, _ = _tables(tmp_path)
    folder = _user_project(tmp_path / "project", BAD_PLAN_YAML.format(trips=trips), name="bad_trips")
    toml = tmp_path / "codeanatomy.toml"
    toml.write_text(
        f'[datasets.trips]\nuri = "{trips}"\n[plans.busy_days]\nsql = "select day, count(*) from trip_log group by day"\n'
    )
    with pytest.raises(ConfigError) as from_toml:
        load_spec(toml)
    monkeypatch.syspath_prepend(str(tmp_path / "project" / "src"))
    with pytest.raises(Exception) as from_yaml:  # noqa: PT011 - Dagster wraps it; the ConfigError is its cause
        dg.ComponentTree.for_project(tmp_path / "project").build_defs()
    error = _config_error(from_yaml.value)
    assert error.source == str(folder / "defs.yaml")
    assert error.key == from_toml.value.key == "plans.busy_days"
    message = str(error)
    assert message == str(from_toml.value).replace(str(toml), str(folder / "defs.yaml"))
    assert "\n" not in message and "the SQL names no declared dataset or plan (known: ['trips'])" in message
    check = _dg(["check", "defs"], tmp_path / "project", tmp_path, tmp_path / "project" / "src")
    assert check.returncode != 0
    assert f"codeanatomy_assets.errors.ConfigError: {message}" in check.stdout + check.stderr


@pytest.mark.parametrize(
    ("plans", "expected"),
    [
        ("- {sql: select 1}", "plans[0]: missing required key 'name' (a string)"),
        ("- {name: a, sql: select * from trips}\n    - {name: a, sql: select 2}", "plans.a: declared twice"),
        (
            "- {name: a, sql: select * from trips, bogus: 1}",
            "plans.a.bogus: unknown key (allowed: description, inputs, sql, sql_file, timeout_s)",
        ),
        (
            "- {name: a, sql: select * from trips, timeout_s: soon}",
            "plans.a.timeout_s: must be a positive number of seconds",
        ),
        ("{name: a}", "plans: must be a list of tables, each with a 'name'"),
    ],
)
def test_defs_yaml_errors_are_one_line(tmp_path: Path, plans: str, expected: str) -> None:
    defs = tmp_path / "defs.yaml"
    defs.write_text(
        "type: codeanatomy_assets.CodeAnatomyPipeline\nattributes:\n"
        f"  datasets:\n    - {{name: trips, uri: data/trips}}\n  plans:\n    {plans}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_spec(defs)
    assert str(err.value) == f"{defs}: {expected}"


def test_templates_are_for_dagster_not_the_cli(tmp_path: Path) -> None:
    defs = tmp_path / "defs.yaml"
    defs.write_text(
        "type: codeanatomy_assets.CodeAnatomyPipeline\nattributes:\n"
        '  datasets:\n    - {name: trips, uri: "{{ env.TRIPS_URI }}"}\n  plans:\n    - {name: a, sql: select * from trips}\n'
    )
    with pytest.raises(ConfigError, match=r"attributes: holds a \{\{ \.\.\. \}\} template"):
        load_spec(defs)


def test_dg_scaffold_defs_writes_a_pipeline_that_loads(tmp_path: Path) -> None:
    root = tmp_path / "project"
    _user_project(root, "")
    (root / "src" / "trips" / "defs" / "pipeline" / "defs.yaml").unlink()
    scaffold = _dg(
        ["scaffold", "defs", "codeanatomy_assets.CodeAnatomyPipeline", "my_pipeline"],
        root,
        tmp_path,
        root / "src",
    )
    assert scaffold.returncode == 0, scaffold.stderr[-3000:]
    written = (root / "src" / "trips" / "defs" / "my_pipeline" / "defs.yaml").read_text()
    assert written.startswith("type: codeanatomy_assets.CodeAnatomyPipeline")
    assert "busy_days" in written
    check = _dg(["check", "defs"], root, tmp_path, root / "src")
    assert check.returncode == 0, check.stderr[-3000:]
