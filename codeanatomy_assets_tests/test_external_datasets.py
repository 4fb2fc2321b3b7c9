"""A user's spec over external Delta tables: an unreadable protocol stops at its blocking check, the rest
builds, the report says why, and secrets given in storage options or OTLP headers never leak."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from codeanatomy_assets.build_outcome import BuildOutcome
from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.runner import BuildRequest, instance_for, run_build
from codeanatomy_assets_tests.otlp_receiver import OtlpReceiver

RUN = "00000000-0000-4000-8000-00000000e7e1"
CANARY = "canary-9d2f-do-not-leak"


@pytest.fixture(scope="module")
def external(
    tmp_path_factory: pytest.TempPathFactory, delta_corpus: Path
) -> tuple[Path, BuildOutcome, OtlpReceiver]:
    root = tmp_path_factory.mktemp("external")
    for table in ("simple_table", "simple_table_features", "table-with-dv-small", "latest_not_checkpointed"):
        shutil.copytree(delta_corpus / table, root / table)
    config = root / "codeanatomy.toml"
    config.write_text(
        f'[datasets.simple]\nuri = "{root / "simple_table"}"\n'
        f'storage_options = {{ AWS_SECRET_ACCESS_KEY = "{CANARY}" }}\n'
        f'[datasets.features]\nuri = "{root / "simple_table_features"}"\n'
        f'[datasets.dv]\nuri = "{root / "table-with-dv-small"}"\n'
        f'[datasets.damaged]\nuri = "{root / "latest_not_checkpointed"}"\n'
        '[plans.damaged_rows]\nsql = "select * from damaged"\n'
        '[plans.simple_ids]\nsql = "select id from simple order by id"\n'
        '[plans.features_count]\nsql = "select count(*) as n from features"\n'
        '[plans.dv_rows]\nsql = "select * from dv"\n'
    )
    home = root / "home"
    with OtlpReceiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={CANARY}",
            "OTEL_RESOURCE_ATTRIBUTES": f"deployment.environment=ci,api_token={CANARY}",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "otlp",
        }
        outcome = run_build(
            BuildRequest.resolve(config=config, home=home),
            run_id=RUN,
            telemetry_config=TelemetryConfig.resolve(env),
        )
    return home, outcome, receiver


def test_unsupported_protocol_stops_at_the_blocking_check(
    external: tuple[Path, BuildOutcome, OtlpReceiver],
) -> None:
    home, outcome, _ = external
    assert not outcome.success
    assert outcome.exit_code == 1
    assert "features:delta_protocol_compatible (ERROR)" in outcome.failed_checks
    assert (home / "lake" / "simple_ids").is_dir()
    assert (home / "lake" / "dv_rows").is_dir()
    assert not (home / "lake" / "features_count").exists()


def test_fallback_is_a_warning_and_the_fallback_reads_deletion_vectors(
    external: tuple[Path, BuildOutcome, OtlpReceiver],
) -> None:
    home, outcome, _ = external
    assert "dv:provider_mode (WARN)" in outcome.failed_checks
    store = DeltaDiagnosticsStore(home / "lake" / "_diagnostics")
    (mode,) = [e for e in store.read_events(RUN, names=["dataset_provider_mode_v1"]) if e.dataset == "dv"]
    assert (mode.severity, mode.category) == (Severity.WARN, Category.DATAFUSION_PROVIDER)
    assert mode.payload["provider_mode"] == "delta_scan_stream"
    assert mode.payload["fallback_reason"]
    instance = instance_for(ProjectHome.resolve(home))
    rows = instance.get_latest_materialization_event(dg.AssetKey("dv_rows")).asset_materialization
    assert rows.metadata["dagster/row_count"].value == 8  # 10 rows written, 2 deleted by the deletion vector


def test_report_says_why(external: tuple[Path, BuildOutcome, OtlpReceiver]) -> None:
    home, outcome, _ = external
    text = outcome.report_path.read_text()
    assert "| failed |" in text
    assert "delta_protocol" in text
    assert "blahabl" in text  # the unknown reader feature of simple_table_features
    # The gate saw both unreadable tables (unsupported protocol, damaged) and found them at error.
    assert "| protocol_incompatibilities_are_errors | yes | 2 incompatibility record(s), all error |" in text
    store = DeltaDiagnosticsStore(home / "lake" / "_diagnostics")
    errors = [e for e in store.read_events(RUN) if e.dataset == "features" and e.severity is Severity.ERROR]
    assert Category.DELTA_PROTOCOL in {e.category for e in errors}


def test_no_secret_in_home_metadata_or_exported_telemetry(
    external: tuple[Path, BuildOutcome, OtlpReceiver],
) -> None:
    home, _, receiver = external
    assert receiver.spans and receiver.logs, "telemetry was not exported"
    assert CANARY not in repr(receiver.spans) + repr(receiver.logs)
    assert receiver.spans[0].resource["api_token"] == "***REDACTED***"  # said to be redacted, not dropped
    assert receiver.spans[0].resource["deployment.environment"] == "ci"
    # The header did reach the endpoint it is meant for (so the secret was really in play) ...
    assert any(
        {k.lower(): v for k, v in headers.items()}.get("x-api-key") == CANARY
        for _, headers in receiver.requests
    )
    # ... and nowhere else: not in the store, the report, the Dagster instance or the lake.
    leaks = [p for p in home.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert leaks == []


def test_damaged_table_is_diagnosed_not_crashed_on(external: tuple[Path, BuildOutcome, OtlpReceiver]) -> None:
    """latest_not_checkpointed references a data file that is not there: an error in delta_log, a failed
    blocking check, no plan on it, and the rest of the build unaffected."""
    home, outcome, _ = external
    assert "damaged:delta_protocol_compatible (ERROR)" in outcome.failed_checks
    # Materialized with its diagnostics; the failing blocking check is what fails the step (FACTS #14).
    instance = instance_for(ProjectHome.resolve(home))
    materialized = instance.get_latest_materialization_event(dg.AssetKey("damaged")).asset_materialization
    assert materialized.metadata["provider_mode"].value == "none"
    assert not (home / "lake" / "damaged_rows").exists()
    store = DeltaDiagnosticsStore(home / "lake" / "_diagnostics")
    codes = {
        (e.category, e.code)
        for e in store.read_events(RUN)
        if e.dataset == "damaged" and e.severity is Severity.ERROR
    }
    assert (Category.DELTA_LOG, "missing_data_files") in codes
