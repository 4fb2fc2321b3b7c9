"""Up-to-date builds: a build that ended well stamps the state it left; ``codeanatomy build`` with nothing
changed since (sources, tables, spec, switches, telemetry, code) launches no run, says so, records
``build_up_to_date_v1`` and prints that build's report. Every kind of change makes the next build run.

The spec reads two external Delta tables written here (``a``, ``b``) and extracts a small source tree.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from codeanatomy_assets.build_key import build_key
from codeanatomy_assets.build_request import BuildRequest, Executor
from codeanatomy_assets.build_stamp import (
    STAMP_FILE,
    find_up_to_date,
    read_stamp,
    stamp_build,
    table_versions,
)
from codeanatomy_assets.diagnostics.event_names import BUILD_UP_TO_DATE
from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.runner import instance_for, run_build
from codeanatomy_assets_tests.cli import run_cli

SAMPLE_TREE = Path(__file__).parent / "fixtures" / "sample_tree"
SPEC = """\
[extract]
source = "{root}/tree"
[datasets.a]
uri = "{root}/a"
[datasets.b]
uri = "{root}/b"
[plans.a_total]
sql = "select sum(v) as total from a"
[plans.joined]
sql = "select a.k, a.v, b.w from a join b on a.k = b.k"
[plans.module_count]
sql = "select count(*) as n from source_files"
"""


def _project(tmp_path: Path, *, sql_suffix: str = "") -> Path:
    """The spec file over ``a``, ``b`` and a copy of the sample tree under ``tmp_path`` (made on first use)."""
    if not (tmp_path / "a").exists():
        write_deltalake(str(tmp_path / "a"), pa.table({"k": [1, 2, 3], "v": [10, 20, 30]}))
        write_deltalake(str(tmp_path / "b"), pa.table({"k": [1, 2], "w": ["x", "y"]}))
        shutil.copytree(SAMPLE_TREE, tmp_path / "tree")
    config = tmp_path / "codeanatomy.toml"
    config.write_text(SPEC.format(root=tmp_path).replace("sum(v)", f"sum(v){sql_suffix}"))
    return config


def _request(tmp_path: Path, **switches: object) -> BuildRequest:
    return BuildRequest.resolve(config=_project(tmp_path), home=tmp_path / "home", **switches)  # type: ignore[arg-type]


def _build(request: BuildRequest) -> str:
    outcome = run_build(request, run_id=str(uuid.uuid4()))
    assert outcome.exit_code == 0, outcome.summary_lines()
    return outcome.run_id


def _check(request: BuildRequest, executor: Executor = Executor.IN_PROCESS) -> str | None:
    """Why ``request`` would run (``None``: up to date), keyed as :func:`run_build` keys its stamp."""
    key = build_key(request, executor, TelemetryConfig.resolve({}))
    return find_up_to_date(request, key).reason


@pytest.fixture
def built(tmp_path: Path) -> tuple[BuildRequest, str]:
    request = _request(tmp_path)
    return request, _build(request)


def test_a_build_that_ended_well_is_stamped_with_the_versions_it_left(
    built: tuple[BuildRequest, str],
) -> None:
    request, run_id = built
    stamp = read_stamp(request.home)
    assert stamp is not None and stamp.run_id == run_id
    assert Path(stamp.report_path).is_file()
    names = {"a", "b", "source_files", "symbols", "imports", "calls", "a_total", "joined", "module_count"}
    assert set(stamp.tables) == names
    assert stamp.tables["b"] == DeltaTable(str(request.home.root.parent / "b")).version()
    assert _check(request) is None


def test_an_external_table_written_since_makes_the_build_run(built: tuple[BuildRequest, str]) -> None:
    request, _ = built
    write_deltalake(str(request.home.root.parent / "b"), pa.table({"k": [3], "w": ["z"]}), mode="append")
    assert _check(request) == "table b is at version 1, the last build left 0"
    _build(request)
    assert _check(request) is None


def test_an_input_written_after_its_plan_read_it_makes_the_build_run(built: tuple[BuildRequest, str]) -> None:
    """A writer outside the build lock (another engine, a run from the Dagster UI) appends to ``b`` after
    ``joined`` read it and before the build stamped the versions it left: every version matches the
    stamp, but ``joined`` was computed from ``b``'s previous version, so a build would run it."""
    request, run_id = built
    stamp = read_stamp(request.home)
    assert stamp is not None
    write_deltalake(str(request.home.root.parent / "b"), pa.table({"k": [3], "w": ["z"]}), mode="append")
    stamp_build(
        request,
        stamp.key,
        run_id=run_id,
        report_path=stamp.report_path,
        finished_unix_ms=stamp.finished_unix_ms,
        versions=table_versions(request),
    )
    assert _check(request) == "plan joined was not computed from its inputs' current versions"


def test_any_commit_to_an_output_since_makes_the_build_run(built: tuple[BuildRequest, str]) -> None:
    request, _ = built
    table = DeltaTable(request.home.dataset_uri("joined"))
    table.alter.set_table_properties({"delta.logRetentionDuration": "interval 30 days"})
    assert (_check(request) or "").startswith("table joined is at version 1")


def test_a_changed_source_file_makes_the_build_run_and_a_touched_one_does_not(
    built: tuple[BuildRequest, str],
) -> None:
    request, _ = built
    tree = request.home.root.parent / "tree"
    path = next(iter(sorted(tree.rglob("*.py"))))
    text = path.read_text()
    path.write_text(text)  # same content, new modification time
    assert _check(request) is None
    path.write_text(text + "\nX = 1\n")
    assert _check(request) == "the source tree changed: 0 added, 1 changed, 0 deleted"
    (tree / "new_module.py").write_text("Y = 2\n")
    path.write_text(text)
    assert _check(request) == "the source tree changed: 1 added, 0 changed, 0 deleted"


@pytest.mark.parametrize(
    "change",
    ["sql", "capture", "memory_limit", "executor", "lineage_env", "full"],
)
def test_spec_switches_and_configuration_make_the_build_run(
    built: tuple[BuildRequest, str], change: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    request, _ = built
    executor = Executor.IN_PROCESS
    if change == "sql":
        request = BuildRequest.resolve(config=_project(tmp_path, sql_suffix=" + 1"), home=request.home.root)
    elif change == "capture":
        request = _request(tmp_path, capture=False)
    elif change == "memory_limit":
        request = _request(tmp_path, memory_limit="1GB")
    elif change == "executor":
        executor = Executor.MULTIPROCESS
    elif change == "lineage_env":
        monkeypatch.setenv("OPENLINEAGE_URL", "http://127.0.0.1:1")
    else:
        request = _request(tmp_path, full=True)
    expected = "a full rebuild was asked for (--full)" if change == "full" else "the spec, the switches"
    assert (_check(request, executor) or "").startswith(expected)


def test_a_deleted_report_makes_the_build_run(built: tuple[BuildRequest, str]) -> None:
    request, run_id = built
    shutil.rmtree(request.home.reports / run_id)
    assert (_check(request) or "").endswith("is gone")


def test_a_failed_build_removes_the_stamp(built: tuple[BuildRequest, str], tmp_path: Path) -> None:
    request, _ = built
    assert (request.home.root / STAMP_FILE).exists()
    shutil.rmtree(tmp_path / "a")  # the next build cannot register a
    failed = run_build(request, run_id=str(uuid.uuid4()))
    assert failed.exit_code == 1
    assert read_stamp(request.home) is None
    assert (_check(request) or "").startswith("no successful build recorded")


def test_the_cli_launches_no_run_when_up_to_date_and_records_why(tmp_path: Path) -> None:
    config = _project(tmp_path)
    home = tmp_path / "home"
    first = run_cli("build", "--config", str(config), "--home", str(home), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report = first.stdout.strip().splitlines()[-1]
    runs_before = len(instance_for(BuildRequest.resolve(config=config, home=home).home).get_runs())

    again = run_cli("build", "--config", str(config), "--home", str(home), cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    lines = again.stdout.strip().splitlines()
    assert lines[0].startswith("up to date: nothing changed since run ")
    assert lines[-1] == report
    request = BuildRequest.resolve(config=config, home=home)
    assert len(instance_for(request.home).get_runs()) == runs_before
    events = DeltaDiagnosticsStore(request.home.diagnostics).read_events(names=[BUILD_UP_TO_DATE])
    assert [e.payload["stamped_run_id"] for e in events] == [Path(report).parent.name]

    forced = run_cli("build", "--config", str(config), "--home", str(home), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "up to date" not in forced.stdout
    assert len(instance_for(request.home).get_runs()) == runs_before + 1


def test_credentials_do_not_enter_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rotating a secret changes no result: the key stays; a setting that is not secret changes it."""
    request = _request(tmp_path)

    def key_with(options: dict[str, str]) -> str:
        datasets = tuple(
            dataclasses.replace(d, storage_options=options) if d.name == "a" else d
            for d in request.spec.datasets
        )
        changed = dataclasses.replace(request, spec=dataclasses.replace(request.spec, datasets=datasets))
        return build_key(changed, Executor.IN_PROCESS, TelemetryConfig.resolve({}))

    first = key_with({"AWS_SECRET_ACCESS_KEY": "first-secret", "AWS_REGION": "eu-west-1"})
    assert key_with({"AWS_SECRET_ACCESS_KEY": "rotated", "AWS_REGION": "eu-west-1"}) == first
    assert key_with({"AWS_SECRET_ACCESS_KEY": "first-secret", "AWS_REGION": "us-east-1"}) != first

    plain = _check_key(request)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer one")
    with_header = _check_key(request)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer two")
    assert _check_key(request) == with_header != plain  # a header configured counts, its value does not


def _check_key(request: BuildRequest) -> str:
    return build_key(request, Executor.IN_PROCESS, TelemetryConfig.resolve({}))
