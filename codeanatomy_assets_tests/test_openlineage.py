"""OpenLineage: a build's run events, received by an HTTP endpoint on 127.0.0.1 or appended to a file, are
valid by the openlineage-python client's models, one START and one COMPLETE or FAIL per plan and per job,
correlated with the build's run id; an endpoint that is down fails nothing and leaks nothing."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import attr
import dagster as dg
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from codeanatomy_assets.build_outcome import BuildOutcome
from codeanatomy_assets.defs.definitions import JOB_NAME, build_definitions
from codeanatomy_assets.defs.envelope import FAILED_RUN_SENSOR
from codeanatomy_assets.defs.resources import CodeAnatomyResource
from codeanatomy_assets.diagnostics.event_names import OPENLINEAGE_EMIT_FAILED
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.errors import ConfigError
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.lineage import facets as custom
from codeanatomy_assets.lineage.config import LineageConfig, new_client
from codeanatomy_assets.lineage.datasets import dataset_identity
from codeanatomy_assets.runner import BuildRequest, Executor, instance_for, run_build
from codeanatomy_assets.spec import load_spec, parse_spec
from codeanatomy_assets.spec_lineage import LineageSpec
from codeanatomy_assets_tests.lineage_receiver import LineageReceiver
from codeanatomy_assets_tests.lineage_validation import validate_event

RUN = "7c0d1b2a-4f3e-4a5b-8c6d-0e1f2a3b4c5d"
CANARY = "ol-canary-5b1e-do-not-leak"
STORAGE_CANARY = "storage-canary-77aa-do-not-leak"
REPO = Path(__file__).resolve().parent.parent


def _pipeline(root: Path, *, failing: bool, lineage: str = "") -> Path:
    """Two Delta tables and a spec: ``busy`` over ``trips`` (a filter, an aggregate), ``ratio`` over
    ``busy`` (with ``failing``: a division by zero, an error only once it executes)."""
    write_deltalake(str(root / "trips"), pa.table({"day": [1, 1, 2, 3], "n": [1, 2, 3, 0]}))
    ratio = "c / (s - s)" if failing else "s / c"
    config = root / "codeanatomy.toml"
    config.write_text(
        f'[datasets.trips]\nuri = "{root / "trips"}"\n'
        f'storage_options = {{ AWS_SECRET_ACCESS_KEY = "{STORAGE_CANARY}" }}\n'
        '[plans.busy]\nsql = "select day, count(*) as c, sum(n) as s from trips where day >= 1 group by day"\n'
        f'[plans.ratio]\nsql = "select day, {ratio} as r from busy"\n{lineage}'
    )
    return config


def _lineage_env(env: pytest.MonkeyPatch, **values: str) -> None:
    for key in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        env.delenv(key)
    for key, value in values.items():
        env.setenv(key, value)


def _by_run(events: list[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(job name, run id) -> the event types of that run, in the order sent."""
    runs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for event in events:
        runs[event["job"]["name"], event["run"]["runId"]].append(event["eventType"])
    return dict(runs)


def _event(events: list[dict[str, Any]], job: str, state: str) -> dict[str, Any]:
    (found,) = [e for e in events if e["job"]["name"] == job and e["eventType"] == state]
    return found


def _leaks(home: Path, *secrets: str) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and any(s.encode() in p.read_bytes() for s in secrets)]


@pytest.fixture(scope="module")
def http_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BuildOutcome, LineageReceiver]:
    """One build sending its events to a receiver through ``OPENLINEAGE_URL`` (with an API key)."""
    root = tmp_path_factory.mktemp("lineage_http")
    config = _pipeline(root, failing=True)
    with LineageReceiver() as receiver, pytest.MonkeyPatch.context() as env:
        _lineage_env(env, OPENLINEAGE_URL=receiver.url, OPENLINEAGE_API_KEY=CANARY)
        outcome = run_build(BuildRequest.resolve(config=config, home=root / "home"), run_id=RUN)
    return root / "home", outcome, receiver


def test_one_start_and_one_complete_or_fail_per_plan_and_per_job(
    http_build: tuple[Path, BuildOutcome, LineageReceiver],
) -> None:
    _, outcome, receiver = http_build
    assert not outcome.success  # ratio divides by zero
    assert {r.path for r in receiver.requests} == {"/api/v1/lineage"}
    plan_run = {p: str(uuid.uuid5(uuid.UUID(RUN), p)) for p in ("busy", "ratio")}
    assert _by_run(receiver.events) == {
        ("codeanatomy_build", RUN): ["START", "FAIL"],
        ("codeanatomy_build.busy", plan_run["busy"]): ["START", "COMPLETE"],
        ("codeanatomy_build.ratio", plan_run["ratio"]): ["START", "FAIL"],
    }
    assert {e["job"]["namespace"] for e in receiver.events} == {"codeanatomy"}


def test_every_event_is_valid_by_the_client_models(
    http_build: tuple[Path, BuildOutcome, LineageReceiver],
) -> None:
    _, _, receiver = http_build
    assert len(receiver.events) == 6
    for data in receiver.events:
        event = validate_event(data)
        assert event.producer == custom.producer()


def test_plan_runs_point_at_the_build_run(http_build: tuple[Path, BuildOutcome, LineageReceiver]) -> None:
    _, _, receiver = http_build
    for event in receiver.events:
        facets = event["run"]["facets"]
        if event["job"]["name"] == "codeanatomy_build":
            assert "parent" not in facets
            continue
        parent = facets["parent"]
        assert parent["run"]["runId"] == parent["root"]["run"]["runId"] == RUN
        assert (parent["job"]["namespace"], parent["job"]["name"]) == ("codeanatomy", "codeanatomy_build")


def test_datasets_are_named_by_uri_with_their_facets(
    http_build: tuple[Path, BuildOutcome, LineageReceiver],
) -> None:
    home, _, receiver = http_build
    root = home.parent
    busy = _event(receiver.events, "codeanatomy_build.busy", "COMPLETE")
    (trips,) = busy["inputs"]
    assert (trips["namespace"], trips["name"]) == ("file", str(root / "trips"))
    assert trips["facets"]["dataSource"] == {**trips["facets"]["dataSource"], "name": "file"}
    assert trips["facets"]["dataSource"]["uri"] == (root / "trips").as_uri()
    assert [f["name"] for f in trips["facets"]["schema"]["fields"]] == ["day", "n"]
    assert trips["facets"]["version"]["datasetVersion"] == "0"
    health = trips["facets"][custom.DELTA_LOG_HEALTH]
    assert (health["latestVersion"], health["severity"], health["protocolCompatible"]) == (0, "info", True)
    assert trips["inputFacets"][custom.PROVIDER_MODE]["mode"] == "delta_pruned_parquet"
    assert trips["inputFacets"]["inputStatistics"]["rowCount"] == 4
    (output,) = busy["outputs"]
    assert (output["namespace"], output["name"]) == ("file", str(home / "lake" / "busy"))
    assert [f["name"] for f in output["facets"]["schema"]["fields"]] == ["day", "c", "s"]
    stats = output["outputFacets"]["outputStatistics"]
    assert stats["rowCount"] == 3 and stats["fileCount"] >= 1 and stats["size"] > 0


def test_run_and_job_facets(http_build: tuple[Path, BuildOutcome, LineageReceiver]) -> None:
    _, _, receiver = http_build
    busy = _event(receiver.events, "codeanatomy_build.busy", "COMPLETE")
    assert busy["job"]["facets"]["sql"]["query"].startswith("select day, count(*)")
    assert busy["job"]["facets"]["jobType"]["jobType"] == "QUERY"
    engine = busy["run"]["facets"]["processing_engine"]
    assert (engine["name"], engine["version"]) == ("DataFusion", "55.0.0")
    assert engine["openlineageAdapterVersion"] == custom.package_version()
    pruning = busy["run"]["facets"][custom.SCAN_PRUNING]
    assert [s["dataset"] for s in pruning["scans"]] == ["trips"]
    assert pruning["filesRead"] == pruning["scans"][0]["filesRead"] == 1
    job_start = _event(receiver.events, "codeanatomy_build", "START")
    assert job_start["job"]["facets"]["jobType"]["jobType"] == "JOB"
    assert job_start["inputs"] == [] and job_start["outputs"] == []


def test_failures_carry_their_error(http_build: tuple[Path, BuildOutcome, LineageReceiver]) -> None:
    _, _, receiver = http_build
    ratio = _event(receiver.events, "codeanatomy_build.ratio", "FAIL")["run"]["facets"]["errorMessage"]
    assert "Divide by zero" in ratio["message"] and ratio["programmingLanguage"] == "python"
    assert "Traceback" in ratio["stackTrace"]
    job = _event(receiver.events, "codeanatomy_build", "FAIL")["run"]["facets"]["errorMessage"]
    assert "step ratio" in job["message"]


def test_api_key_reaches_the_endpoint_and_nothing_else(
    http_build: tuple[Path, BuildOutcome, LineageReceiver],
) -> None:
    home, _, receiver = http_build
    authorizations = {r.headers.get("Authorization") for r in receiver.requests}
    assert authorizations == {f"Bearer {CANARY}"}
    assert not [
        r for r in receiver.requests if CANARY.encode() in r.body or STORAGE_CANARY.encode() in r.body
    ]
    assert _leaks(home, CANARY) == []
    assert not [k for k in os.environ if k.startswith("OPENLINEAGE")]  # the client's copies are gone too


def test_file_transport_from_the_spec_and_a_skipped_plan(tmp_path: Path) -> None:
    """The spec's ``[lineage]`` table appends the events to a file as JSON lines; a rebuild skips the
    plans (nothing changed): each still gets its START and COMPLETE, saying it was skipped."""
    lineage = '[lineage]\ntransport = "file"\npath = "lineage/events.jsonl"\nnamespace = "analytics"\n'
    config = _pipeline(tmp_path, failing=False, lineage=lineage)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for run_id in (first, second):
        assert run_build(BuildRequest.resolve(config=config, home=tmp_path / "home"), run_id=run_id).success
    events = [json.loads(line) for line in (tmp_path / "lineage" / "events.jsonl").read_text().splitlines()]
    for event in events:
        validate_event(event)
    assert {e["job"]["namespace"] for e in events} == {"analytics"}
    runs = _by_run(events)
    assert len(runs) == 6 and set(map(tuple, runs.values())) == {("START", "COMPLETE")}
    skipped = [
        e["run"]["facets"][custom.PLAN_SKIPPED]
        for e in events
        if e["eventType"] == "COMPLETE" and custom.PLAN_SKIPPED in e["run"]["facets"]
    ]
    assert len(skipped) == 2  # busy and ratio of the second build
    assert {s["previousRunId"] for s in skipped} == {first} and all(s["skipped"] for s in skipped)
    busy = [
        e for e in events if e["job"]["name"] == "codeanatomy_build.busy" and e["eventType"] == "COMPLETE"
    ]
    assert "outputStatistics" in busy[0]["outputs"][0]["outputFacets"]
    assert busy[1]["outputs"][0]["outputFacets"] == {}  # skipped: nothing written


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_endpoint_that_is_down_is_a_warning_and_leaks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _pipeline(tmp_path, failing=False)
    _lineage_env(
        monkeypatch, OPENLINEAGE_URL=f"http://127.0.0.1:{_closed_port()}", OPENLINEAGE_API_KEY=CANARY
    )
    run_id = str(uuid.uuid4())
    outcome = run_build(BuildRequest.resolve(config=config, home=tmp_path / "home"), run_id=run_id)
    assert outcome.success
    store = DeltaDiagnosticsStore(tmp_path / "home" / "lake" / "_diagnostics")
    warns = store.read_events(run_id, names=[OPENLINEAGE_EMIT_FAILED])
    # The job's START was tried (and retried by the client); every later event of the run was not sent.
    assert [(w.code, w.plan, w.payload["event_type"]) for w in warns] == [
        ("emit_failed", None, "START"),
        ("transport_given_up", "busy", "START"),
        ("transport_given_up", "busy", "COMPLETE"),
        ("transport_given_up", "ratio", "START"),
        ("transport_given_up", "ratio", "COMPLETE"),
        ("transport_given_up", None, "COMPLETE"),
    ]
    assert {(w.severity, w.category) for w in warns} == {(Severity.WARN, Category.TELEMETRY)}
    assert "Connection refused" in (warns[0].message or "")
    assert _leaks(tmp_path / "home", CANARY, STORAGE_CANARY) == []


@pytest.mark.slow
def test_plan_steps_in_other_processes_emit_too(tmp_path: Path) -> None:
    """The multiprocess executor: each plan step's process resolves the spec's ``[lineage]`` itself."""
    lineage = '[lineage]\ntransport = "file"\npath = "events.jsonl"\n'
    config = _pipeline(tmp_path, failing=False, lineage=lineage)
    request = BuildRequest.resolve(config=config, home=tmp_path / "home")
    assert run_build(request, run_id=RUN, executor=Executor.MULTIPROCESS, max_concurrent=2).success
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    for event in events:
        validate_event(event)
    plan_run = {p: str(uuid.uuid5(uuid.UUID(RUN), p)) for p in ("busy", "ratio")}
    assert _by_run(events) == {
        ("codeanatomy_build", RUN): ["START", "COMPLETE"],
        ("codeanatomy_build.busy", plan_run["busy"]): ["START", "COMPLETE"],
        ("codeanatomy_build.ratio", plan_run["ratio"]): ["START", "COMPLETE"],
    }


def test_runs_launched_from_dagster_get_their_job_events(tmp_path: Path) -> None:
    """A run launched from the UI: the report asset sends its job's START (dated when the run started)
    and COMPLETE; a failed one gets START and FAIL from the failed-run sensor."""
    lineage = f'[lineage]\ntransport = "file"\npath = "{tmp_path / "events.jsonl"}"\n'
    (tmp_path / "good").mkdir(), (tmp_path / "bad").mkdir()
    home = ProjectHome.resolve(tmp_path / "home")
    resource = CodeAnatomyResource(home=str(home.root))
    instance = instance_for(home)
    good = build_definitions(
        load_spec(_pipeline(tmp_path / "good", failing=False, lineage=lineage)), resource
    )
    ok = good.resolve_job_def(JOB_NAME).execute_in_process(instance=instance)
    bad = build_definitions(load_spec(_pipeline(tmp_path / "bad", failing=True, lineage=lineage)), resource)
    failed = bad.resolve_job_def(JOB_NAME).execute_in_process(instance=instance, raise_on_error=False)
    failure = next(e for e in failed.all_events if e.event_type_value == "PIPELINE_FAILURE")
    bad.resolve_sensor_def(FAILED_RUN_SENSOR)(
        dg.build_run_status_sensor_context(
            sensor_name=FAILED_RUN_SENSOR,
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=failed.dagster_run,
            resources={"codeanatomy": resource},
        ).for_run_failure()
    )
    events = [
        validate_event(json.loads(line)) for line in (tmp_path / "events.jsonl").read_text().splitlines()
    ]
    runs = _by_run([json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()])
    assert runs[("codeanatomy_build", ok.run_id)] == ["START", "COMPLETE"]
    assert runs[("codeanatomy_build", failed.run_id)] == ["START", "FAIL"]
    assert runs[("codeanatomy_build.ratio", str(uuid.uuid5(uuid.UUID(failed.run_id), "ratio")))] == [
        "START",
        "FAIL",
    ]
    job_start = next(e for e in events if e.job.name == "codeanatomy_build" and e.run.runId == ok.run_id)
    plan_start = next(
        e for e in events if e.job.name == "codeanatomy_build.busy" and e.run.runId != ok.run_id
    )
    assert job_start.eventTime < plan_start.eventTime  # dated when the run started, though sent at its end


# --- configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ('transport = "kafka"', "lineage.transport", "must be one of http, file"),
        ('transport = "http"', "lineage.transport", "missing required key 'url'"),
        ('transport = "file"\nurl = "http://h"\npath = "x"', "lineage.url", "does not apply"),
        ('url = "http://h"', "lineage.url", "does not apply with no transport"),
        ('transport = "http"\nurl = "http://u:pw@h"', "lineage.url", "must hold no credentials"),
        ('transport = "http"\nurl = "ftp://h"', "lineage.url", "http:// or https://"),
        ('transport = "http"\nurl = "http://h"\ntimeout_s = 0', "lineage.timeout_s", "positive number"),
        ('namespace = ""', "lineage.namespace", "non-empty string"),
        ("bogus = 1", "lineage.bogus", "unknown key"),
    ],
)
def test_lineage_table_errors_name_the_key(table: str, key: str, problem: str) -> None:
    text = f'[datasets.t]\nuri = "/t"\n[lineage]\n{table}\n'
    with pytest.raises(ConfigError) as caught:
        parse_spec(text, source="c.toml", base_dir=Path("/cfg"))
    assert key in str(caught.value) and problem in str(caught.value)


def test_lineage_table_file_path_is_relative_to_the_spec() -> None:
    text = '[datasets.t]\nuri = "/t"\n[lineage]\ntransport = "file"\npath = "ol/events.jsonl"\n'
    spec = parse_spec(text, source="c.toml", base_dir=Path("/cfg"))
    assert spec.lineage == LineageSpec(transport="file", path="/cfg/ol/events.jsonl")
    assert parse_spec('[datasets.t]\nuri = "/t"\n', source="c.toml", base_dir=None).lineage is None


def test_environment_wins_over_the_spec_and_disabled_over_both() -> None:
    spec = LineageSpec(transport="file", path="/x/events.jsonl", namespace="from_spec")
    env = {"OPENLINEAGE_URL": "http://lineage:5000", "OPENLINEAGE_NAMESPACE": "from_env"}
    from_env = LineageConfig.resolve(spec, env)
    assert from_env is not None
    assert (from_env.source, from_env.namespace, from_env.client_config) == ("environment", "from_env", None)
    from_spec = LineageConfig.resolve(spec, {})
    assert from_spec is not None and (from_spec.source, from_spec.namespace) == ("spec", "from_spec")
    assert LineageConfig.resolve(spec, {**env, "OPENLINEAGE_DISABLED": "true"}) is None
    assert LineageConfig.resolve(LineageSpec(namespace="only"), {}) is None
    keyed = LineageConfig.resolve(
        LineageSpec(transport="http", url="http://h"), {"OPENLINEAGE_API_KEY": CANARY}
    )
    assert keyed is not None and CANARY not in repr(keyed) + keyed.target


def test_building_a_client_leaves_the_environment_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client copies OPENLINEAGE_URL and the API key into variables of its own; they are removed."""
    _lineage_env(monkeypatch, OPENLINEAGE_URL="http://127.0.0.1:1", OPENLINEAGE_API_KEY=CANARY)
    before = dict(os.environ)
    config = LineageConfig.resolve(None, os.environ)
    assert config is not None
    client = new_client(config)
    assert client.transport.kind == "http"
    assert dict(os.environ) == before


@pytest.mark.parametrize(
    ("uri", "identity"),
    [
        ("s3://AKIA:secret@bucket/lake/t?x-amz-signature=s", ("s3://bucket", "lake/t", "s3://bucket/lake/t")),
        ("gs://bucket/t", ("gs://bucket", "t", "gs://bucket/t")),
        ("file:///data/my%20t", ("file", "/data/my t", "file:///data/my%20t")),
        ("file://nas/data/t", ("file://nas", "/data/t", "file://nas/data/t")),
        (
            "abfss://box@acct.dfs.core.windows.net/t",
            ("abfss://box@acct.dfs.core.windows.net", "t", "abfss://box@acct.dfs.core.windows.net/t"),
        ),
    ],
)
def test_dataset_names_and_uris_hold_no_credentials(uri: str, identity: tuple[str, str, str]) -> None:
    found = dataset_identity(uri)
    assert (found.namespace, found.name, found.uri) == identity


def test_custom_facet_schemas_describe_the_facet_classes() -> None:
    """docs/openlineage/facets.json (each custom facet's ``_schemaURL``) has each class's fields."""
    defs = json.loads((REPO / "docs" / "openlineage" / "facets.json").read_text())["$defs"]
    classes = [
        custom.ProviderModeInputDatasetFacet,
        custom.DeltaLogHealthDatasetFacet,
        custom.ScanPruning,
        custom.ScanPruningRunFacet,
        custom.PlanSkippedRunFacet,
    ]
    for cls in classes:
        definition = defs[cls.__name__]
        own = definition["allOf"][1] if "allOf" in definition else definition
        fields = [f for f in attr.fields(cls) if not f.name.startswith("_")]
        assert set(own["properties"]) == {f.name for f in fields}, cls.__name__
        assert set(own["required"]) == {f.name for f in fields if f.default is attr.NOTHING}, cls.__name__
        assert cls._get_schema().endswith(f"docs/openlineage/facets.json#/$defs/{cls.__name__}")
