"""Registration: the provider policy, read probes, fallbacks, events — and never a wrong-data provider."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import datafusion
import deltalake
import pyarrow as pa
import pytest

from codeanatomy_assets.delta.mode_registration import register_object_store
from codeanatomy_assets.delta.protocol import READ_MODES
from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.delta.pruned import quote_ident
from codeanatomy_assets.delta.registration import register_dataset, register_for_plan
from codeanatomy_assets.delta.registration_errors import redact
from codeanatomy_assets.delta.registration_events import DELTALAKE_DATAFUSION_MAJOR
from codeanatomy_assets.delta.registration_records import Registration, RegistrationPolicy
from codeanatomy_assets.diagnostics.event_names import (
    DATASET_PROVIDER_MODE,
    DATASET_PROVIDER_PROBE,
    DELTA_LOG_FINDING,
    DELTA_LOG_HEALTH,
    DELTA_PROTOCOL_COMPATIBILITY,
)
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
from codeanatomy_assets.diagnostics.taxonomy import Category, EventKind, Severity
from codeanatomy_assets.errors import DatasetError, ProtocolIncompatibleError

REPO_ROOT = Path(__file__).resolve().parent.parent
PROVIDER_MODE_PAYLOAD = {
    "dataset",
    "provider_mode",
    "provider_class",
    "ffi_capsule_present",
    "datafusion_version",
    "deltalake_version",
    "majors_match",
    "object_store_registered",
    "fallback_reason",
    "filter_pushdown",
    "probe_ok",
    "probe_error",
    "probe_ms",
    "version",
}


@pytest.fixture
def copy_table(delta_corpus: Path, tmp_path: Path) -> Any:
    """Copy a corpus table to a writable temporary folder."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(delta_corpus / name, target)
        for path in [target, *target.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        return target

    return copy


def register(
    uri: Path | str, name: str = "t", **kwargs: Any
) -> tuple[Registration, datafusion.SessionContext]:
    ctx = datafusion.SessionContext()
    result = register_dataset(
        ctx, name=name, uri=str(uri), run_id="run-1", sink=DiagnosticsCollector(), **kwargs
    )
    return result, ctx


def rows(table: pa.Table) -> list[str]:
    return sorted(repr(sorted(r.items())) for r in table.to_pylist())


def expected_rows(uri: Path) -> list[str]:
    """deltalake's own correct reader (``DeltaTable.scan``; never ``to_pyarrow_table``, FACTS #24)."""
    return rows(pa.table(pa.RecordBatchReader.from_stream(deltalake.DeltaTable(str(uri)).scan())))


def event(result: Registration, name: str) -> DiagnosticEvent:
    return next(e for e in result.events if e.name == name)


WITHOUT_PRUNED = RegistrationPolicy(
    modes=(ProviderMode.DELTA_TABLE_PROVIDER, ProviderMode.PYARROW_DATASET, ProviderMode.DELTA_SCAN_STREAM)
)
"""The policy before ``delta_pruned_parquet`` (its own tests: ``test_pruned_scan.py``)."""


def test_plain_table_uses_the_provider(delta_corpus: Path) -> None:
    uri = delta_corpus / "delta-0.8.0-partitioned"
    result, ctx = register(uri, policy=WITHOUT_PRUNED)
    table = result.registered
    assert isinstance(table, RegisteredTable)
    assert table.provider_mode is ProviderMode.DELTA_TABLE_PROVIDER
    assert table.provider_class == "deltalake.table.DeltaTable"
    assert (table.protocol_compatible, table.version, table.fallback_reason) == (True, 0, None)
    assert rows(ctx.sql("SELECT * FROM t").to_arrow_table()) == expected_rows(uri)
    mode = event(result, DATASET_PROVIDER_MODE)
    assert (mode.severity, mode.category, mode.kind) == (
        Severity.INFO,
        Category.DATAFUSION_PROVIDER,
        EventKind.ARTIFACT,
    )
    assert set(mode.payload) >= PROVIDER_MODE_PAYLOAD
    assert mode.payload["ffi_capsule_present"] is True
    assert mode.payload["majors_match"] is True
    assert mode.payload["probe_ok"] is True
    # FACTS #2: the Delta provider receives no filters; a Filter node stays above its TableScan.
    assert mode.payload["filter_pushdown"] is False
    assert mode.payload["delta_file_pruning"] is False
    assert result.filter_pushdown is False


def test_plain_table_uses_the_pruned_parquet_reader_by_default(delta_corpus: Path) -> None:
    uri = delta_corpus / "delta-0.8.0-partitioned"
    result, ctx = register(uri)
    assert result.registered.provider_mode is ProviderMode.DELTA_PRUNED_PARQUET
    assert (result.registered.version, result.registered.fallback_reason) == (0, None)
    assert rows(ctx.sql("SELECT * FROM t").to_arrow_table()) == expected_rows(uri)
    mode = event(result, DATASET_PROVIDER_MODE)
    assert (mode.severity, mode.code) == (Severity.INFO, "provider_mode_default")
    assert set(mode.payload) >= PROVIDER_MODE_PAYLOAD | {"delta_file_pruning", "scan_filter_pushdown"}
    assert (mode.payload["filter_pushdown"], mode.payload["delta_file_pruning"]) == (True, True)
    assert mode.payload["scan_filter_pushdown"] is True  # and DataFusion's Parquet scan gets the filters
    assert mode.payload["ffi_capsule_present"] is False


def test_events_are_complete_and_round_trip(delta_corpus: Path) -> None:
    sink = DiagnosticsCollector()
    ctx = datafusion.SessionContext()
    result = register_dataset(
        ctx, name="dv", uri=str(delta_corpus / "table-with-dv-small"), run_id="run-9", sink=sink
    )
    names = [e.name for e in result.events]
    assert names[0] == DELTA_LOG_HEALTH
    assert names[-2:] == [DELTA_PROTOCOL_COMPATIBILITY, DATASET_PROVIDER_MODE]
    assert all(e.run_id == "run-9" and e.dataset == "dv" for e in result.events)
    recorded = sink.all_events()
    assert sorted(e.event_id for e in recorded) == sorted(e.event_id for e in result.events)
    health = event(result, DELTA_LOG_HEALTH)
    assert (health.category, health.kind, health.severity) == (
        Category.DELTA_LOG,
        EventKind.ARTIFACT,
        Severity.INFO,
    )
    assert health.payload["table_features"] == ["deletionVectors"]
    assert health.payload["protocol_compatible"] is True
    assert {"latest_version", "last_checkpoint", "version_gaps", "min_reader_version"} <= set(health.payload)
    compat = event(result, DELTA_PROTOCOL_COMPATIBILITY)
    assert (compat.category, compat.severity) == (Category.DELTA_PROTOCOL, Severity.INFO)
    assert compat.payload["compatibility"]["pyarrow_dataset"]["unsupported"] == ["deletionVectors"]


def test_deletion_vectors_fall_back_to_the_scan_stream(delta_corpus: Path) -> None:
    uri = delta_corpus / "table-with-dv-small"
    result, ctx = register(uri)
    assert result.registered.provider_mode is ProviderMode.DELTA_SCAN_STREAM
    got = ctx.sql("SELECT * FROM t").to_arrow_table()
    assert got.num_rows == 8  # 10 rows written, 2 deleted by the deletion vector
    assert rows(got) == expected_rows(uri)
    mode = event(result, DATASET_PROVIDER_MODE)
    assert (mode.severity, mode.code) == (Severity.WARN, "provider_mode_fallback")
    assert "CooperativeExec" in mode.payload["fallback_reason"]  # FACTS #4
    assert "pyarrow_dataset unsupported: deletionVectors" in mode.payload["fallback_reason"]
    assert (
        "delta_pruned_parquet unsupported: deletionVectors(in use: 1 live files)"
        in mode.payload["fallback_reason"]
    )
    probes = [e for e in result.events if e.name == DATASET_PROVIDER_PROBE]
    assert [(p.payload["mode"], p.severity) for p in probes] == [
        ("delta_table_provider", Severity.WARN),
        ("delta_scan_stream", Severity.INFO),
    ]
    assert probes[0].payload["exception.type"] == "Exception"
    assert result.compatibility[ProviderMode.DELTA_TABLE_PROVIDER].probe_error is not None


@pytest.mark.parametrize(
    "modes",
    [
        (ProviderMode.DELTA_TABLE_PROVIDER, ProviderMode.PYARROW_DATASET, ProviderMode.DELTA_SCAN_STREAM),
        (ProviderMode.PYARROW_DATASET, ProviderMode.DELTA_SCAN_STREAM),
    ],
)
def test_column_mapping_is_never_served_by_pyarrow(
    delta_corpus: Path, modes: tuple[ProviderMode, ...]
) -> None:
    uri = delta_corpus / "table_with_column_mapping"
    result, ctx = register(uri, policy=RegistrationPolicy(modes=modes))
    assert result.registered.provider_mode is not ProviderMode.PYARROW_DATASET
    got = ctx.sql("SELECT * FROM t").to_arrow_table()
    assert got.num_rows == 5
    assert all(column.null_count == 0 for column in got.columns)  # FACTS #5: pyarrow would give all-NULL
    assert rows(got) == expected_rows(uri)
    assert not any(p.mode is ProviderMode.PYARROW_DATASET for p in result.probes)  # refused statically


def test_deletion_vectors_via_pyarrow_only_is_incompatible(delta_corpus: Path) -> None:
    sink = DiagnosticsCollector()
    with pytest.raises(ProtocolIncompatibleError) as raised:
        register_dataset(
            datafusion.SessionContext(),
            name="dv",
            uri=str(delta_corpus / "table-with-dv-small"),
            run_id="r",
            sink=sink,
            policy=RegistrationPolicy(modes=(ProviderMode.PYARROW_DATASET,)),
        )
    assert raised.value.unsupported == ("deletionVectors",)
    assert raised.value.dataset == "dv"
    assert "table-with-dv-small" in str(raised.value)
    modes = sink.artifacts_snapshot()[DATASET_PROVIDER_MODE]
    assert modes[0]["severity"] == "error"


def test_no_fallback_policy_raises_on_a_failed_probe(delta_corpus: Path) -> None:
    with pytest.raises(DatasetError, match="CooperativeExec"):
        register(
            delta_corpus / "table-with-dv-small",
            policy=RegistrationPolicy(modes=(ProviderMode.DELTA_TABLE_PROVIDER,), allow_fallback=False),
        )


@pytest.mark.parametrize(
    ("table", "unsupported"),
    [
        ("spark-shredded-variant-preview-delta", ("variantShredding-preview",)),
        ("simple_table_features", ("blahabl", "columnMapping", "deletionVectors", "minReaderVersion=5")),
    ],
)
def test_incompatible_protocols_raise(delta_corpus: Path, table: str, unsupported: tuple[str, ...]) -> None:
    sink = DiagnosticsCollector()
    with pytest.raises(ProtocolIncompatibleError) as raised:
        register_dataset(
            datafusion.SessionContext(), name="x", uri=str(delta_corpus / table), run_id="r", sink=sink
        )
    assert set(unsupported) <= set(raised.value.unsupported)
    compat = sink.artifacts_snapshot()[DELTA_PROTOCOL_COMPATIBILITY][0]
    assert (compat["severity"], compat["category"], compat["code"]) == (
        "error",
        "delta_protocol",
        "protocol_incompatible",
    )


def test_unknown_reader_feature_and_reader_version_4(copy_table: Any) -> None:
    for protocol, token in (
        (
            {
                "minReaderVersion": 3,
                "minWriterVersion": 7,
                "readerFeatures": ["zzz"],
                "writerFeatures": ["zzz"],
            },
            "zzz",
        ),
        ({"minReaderVersion": 4, "minWriterVersion": 7, "writerFeatures": []}, "minReaderVersion=4"),
    ):
        table = copy_table("simple_table") if token == "zzz" else copy_table("simple_table_with_checkpoint")
        commit = table / "_delta_log" / f"{0:020d}.json"
        lines = [
            json.dumps({"protocol": protocol}) if "protocol" in json.loads(line) else line
            for line in commit.read_text().splitlines()
        ]
        commit.write_text("\n".join(lines) + "\n")
        if token == "minReaderVersion=4":  # the checkpoint would otherwise hold the old protocol
            (table / "_delta_log" / f"{10:020d}.checkpoint.parquet").unlink()
            (table / "_delta_log" / "_last_checkpoint").unlink()
        with pytest.raises(ProtocolIncompatibleError) as raised:
            register(table)
        assert token in raised.value.unsupported


def test_count_star_does_not_notice_missing_files(delta_corpus: Path) -> None:
    """FACTS #4: with file statistics count(*) succeeds although no data file exists; probes must read data."""
    ctx = datafusion.SessionContext()
    ctx.register_table("raw", deltalake.DeltaTable(str(delta_corpus / "checkpoints")))
    assert ctx.sql("SELECT count(*) FROM raw").to_arrow_table().column(0)[0].as_py() == 12
    with pytest.raises(DatasetError, match="not found"):
        register(delta_corpus / "checkpoints")


def test_missing_data_file_is_a_dataset_error_not_wrong_data(copy_table: Any) -> None:
    table = copy_table("simple_table")
    next(table.glob("part-00000-2befed33*.parquet")).unlink()
    sink = DiagnosticsCollector()
    with pytest.raises(DatasetError) as raised:
        register_dataset(
            datafusion.SessionContext(), name="t", uri=str(table), run_id="r", sink=sink, policy=None
        )
    assert not isinstance(raised.value, ProtocolIncompatibleError)
    finding = sink.events_snapshot()[DELTA_LOG_FINDING][0]
    assert (finding["code"], finding["severity"]) == ("missing_data_files", "error")
    health = sink.artifacts_snapshot()[DELTA_LOG_HEALTH][0]
    assert health["severity"] == "error"
    mode = sink.artifacts_snapshot()[DATASET_PROVIDER_MODE][0]
    assert (mode["severity"], mode["code"]) == ("error", "provider_mode_none")


def test_stale_last_checkpoint_is_diagnosed(copy_table: Any) -> None:
    table = copy_table("simple_table")
    (table / "_delta_log" / "_last_checkpoint").write_text('{"version": 3, "size": 5}')
    sink = DiagnosticsCollector()
    with pytest.raises(DatasetError, match="checkpoint"):
        register_dataset(datafusion.SessionContext(), name="t", uri=str(table), run_id="r", sink=sink)
    finding = sink.events_snapshot()[DELTA_LOG_FINDING][0]
    assert (finding["code"], finding["severity"], finding["category"]) == (
        "stale_last_checkpoint",
        "warn",
        "delta_log",
    )


def test_probe_false_registers_without_reading(delta_corpus: Path) -> None:
    result, ctx = register(delta_corpus / "simple_table", probe=False)
    assert result.registered.provider_mode is ProviderMode.DELTA_PRUNED_PARQUET
    assert result.probes == ()
    assert event(result, DATASET_PROVIDER_MODE).payload["probe_ok"] is None
    assert ctx.sql("SELECT count(*) FROM t").to_arrow_table().num_rows == 1


def test_names_are_quote_safe(delta_corpus: Path) -> None:
    name = 'odd "name".with dot'
    result, ctx = register(delta_corpus / "simple_table", name=name)
    assert result.registered.dataset == name
    assert ctx.sql(f"SELECT * FROM {quote_ident(name)}").to_arrow_table().num_rows == 3


def test_register_for_plan_replays_the_decision(delta_corpus: Path) -> None:
    for table_name in ("simple_table", "table-with-dv-small"):
        uri = delta_corpus / table_name
        result, _ = register(uri)
        ctx = datafusion.SessionContext()
        register_for_plan(ctx, result.registered)
        assert rows(ctx.sql("SELECT * FROM t").to_arrow_table()) == expected_rows(uri)
    pinned = RegisteredTable(
        dataset="old",
        uri=str(delta_corpus / "simple_table"),
        provider_mode=ProviderMode.DELTA_TABLE_PROVIDER,
        provider_class="deltalake.table.DeltaTable",
        protocol_compatible=True,
        version=0,
    )
    ctx = datafusion.SessionContext()
    register_for_plan(ctx, pinned)
    assert ctx.sql("SELECT count(*) AS n FROM old").to_pylist() == [{"n": 5}]
    with pytest.raises(DatasetError):
        register_for_plan(ctx, dataclasses.replace(pinned, provider_mode=ProviderMode.NONE))


def test_object_store_registration(delta_corpus: Path) -> None:
    ctx = datafusion.SessionContext()
    options = {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ALLOW_HTTP": "true"}
    assert register_object_store(ctx, "s3://bucket/path/table", options)
    assert register_object_store(ctx, "gs://bucket/table", {})
    assert not register_object_store(ctx, str(delta_corpus / "simple_table"), None)


def test_unreachable_object_store_never_leaks_secrets() -> None:
    secret = "canary-secret-7f3a"
    options = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "canary-key-id",
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": "us-east-1",
        "max_retries": "0",
    }
    sink = DiagnosticsCollector()
    with pytest.raises(DatasetError) as raised:
        register_dataset(
            datafusion.SessionContext(),
            name="remote",
            uri="s3://bucket/table",
            storage_options=options,
            run_id="r",
            sink=sink,
        )
    text = json.dumps(sink.all_rows()) + str(raised.value)
    assert secret not in text
    assert "canary-key-id" not in text
    assert sink.artifacts_snapshot()[DATASET_PROVIDER_MODE][0]["severity"] == "error"


def test_redact() -> None:
    assert redact("s3://user:pw@bucket/t key=abc123", {"k": "abc123"}) == "s3://***@bucket/t key=***"


def test_installed_majors_match() -> None:
    assert int(datafusion.__version__.split(".")[0]) == DELTALAKE_DATAFUSION_MAJOR  # FACTS #1


def test_pyarrow_dataset_mode_in_its_own_process(delta_corpus: Path) -> None:
    """The pyarrow-dataset mode, end to end in a child whose exit code is checked (see the module docs)."""
    script = textwrap.dedent(
        """
        import json, sys
        import datafusion
        from codeanatomy_assets.delta.provider import ProviderMode
        from codeanatomy_assets.delta.registration import register_dataset
        from codeanatomy_assets.delta.registration_records import RegistrationPolicy
        from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
        ctx = datafusion.SessionContext()
        result = register_dataset(
            ctx, name="t", uri=sys.argv[1], run_id="r", sink=DiagnosticsCollector(),
            policy=RegistrationPolicy(modes=(ProviderMode.PYARROW_DATASET, ProviderMode.DELTA_SCAN_STREAM)),
        )
        table = ctx.sql("SELECT * FROM t").to_arrow_table()
        print(json.dumps({
            "mode": result.registered.provider_mode.value,
            "pushdown": result.filter_pushdown,
            "isolated": [p.isolated for p in result.probes],
            "rows": sorted(table.column("id").to_pylist()),
        }))
        """
    )
    uri = delta_corpus / "simple_table"
    done = subprocess.run(
        [sys.executable, "-c", script, str(uri)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {
        "mode": "pyarrow_dataset",
        "pushdown": True,  # DataFusion pushes filters into a pyarrow dataset scan
        "isolated": [True],
        "rows": sorted(
            r["id"]
            for r in pa.table(
                pa.RecordBatchReader.from_stream(deltalake.DeltaTable(str(uri)).scan())
            ).to_pylist()
        ),
    }


# --- local paths deltalake percent-encodes -----------------------------------------------------------------

ODD_FOLDER = "covid data #1 ?%[x]*"


@pytest.fixture
def odd_table(tmp_path: Path) -> Path:
    """A partitioned table in a folder whose name holds a space, ``#``, ``?``, ``%`` and glob characters."""
    written = tmp_path / "written"  # deltalake 1.6.6 panics writing to a path holding "[" (reading is fine)
    deltalake.write_deltalake(written, pa.table({"x": [1, 2], "p": ["k v", "k%v"]}), partition_by=["p"])
    deltalake.write_deltalake(written, pa.table({"x": [3], "p": ["z"]}), mode="append", partition_by=["p"])
    uri = tmp_path / ODD_FOLDER
    written.rename(uri)
    return uri


@pytest.mark.parametrize("mode", READ_MODES, ids=lambda m: m.value)
def test_every_mode_reads_a_local_path_with_odd_characters(odd_table: Path, mode: ProviderMode) -> None:
    for spelled in (str(odd_table), odd_table.as_uri()):
        result, ctx = register(spelled, policy=RegistrationPolicy(modes=(mode,), allow_fallback=False))
        assert result.registered.provider_mode is mode
        assert result.health.severity is Severity.INFO, result.health.findings
        assert rows(ctx.sql("SELECT * FROM t").to_arrow_table()) == expected_rows(odd_table)
        del ctx  # a pyarrow dataset's session is dropped before exit (module docstring)


def test_the_default_policy_serves_the_odd_path_without_a_fallback(odd_table: Path) -> None:
    result, _ = register(odd_table)
    assert result.registered.provider_mode is ProviderMode.DELTA_PRUNED_PARQUET
    assert result.registered.fallback_reason is None
    assert event(result, DATASET_PROVIDER_MODE).code == "provider_mode_default"


def test_a_percent_escape_in_a_folder_name_is_explained(odd_table: Path) -> None:
    """deltalake decodes "%20" in a local path and looks for "a b": the reason is said, not just "not found"."""
    escaped = odd_table.rename(odd_table.parent / "a%20b")
    with pytest.raises(DatasetError) as err:
        register(escaped)
    assert "deltalake decodes percent-escapes such as '%20'" in str(err.value)
