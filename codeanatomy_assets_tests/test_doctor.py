"""``codeanatomy doctor``: end to end in a subprocess on every corpus table and on damaged copies.

Every run checks the exit code (FACTS #24: a crashing reader path shows up only there), that stdout is JSON with
exactly the report keys, and that stderr holds no traceback. Protocol and checkpoint fields are compared with
the independent reading in ``test_delta_log.reference_read``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from codeanatomy_assets.cli.doctor import doctor, parse_storage_options
from codeanatomy_assets.delta.doctor import DIAGNOSTIC_KEYS, REPORT_KEYS, diagnose, exit_code, render_markdown
from codeanatomy_assets_tests.test_delta_log import CORPUS_TABLES, reference_read

REPO_ROOT = Path(__file__).resolve().parent.parent
ENTRY = "from codeanatomy_assets.cli.app import main; main()"

# What a build would do with each corpus table (mode chosen, or "none"), and whether the doctor exits 1.
EXPECTED: dict[str, tuple[str, int]] = {
    "COVID-19_NYT": ("delta_pruned_parquet", 0),
    "cdc_ict_table": ("delta_pruned_parquet", 0),
    "checkpoint-v2-table": ("delta_pruned_parquet", 0),
    "checkpoints": ("none", 1),  # data files not shipped
    "delta-0.8-empty": ("delta_pruned_parquet", 0),
    "delta-0.8.0-partitioned": ("delta_pruned_parquet", 0),
    "http_requests": ("delta_pruned_parquet", 0),
    "issue-2152": ("delta_pruned_parquet", 0),
    "latest_not_checkpointed": ("none", 1),  # a data file not shipped
    "simple_table": ("delta_pruned_parquet", 0),
    "simple_table_features": ("none", 1),  # reader version 5, unknown feature
    "simple_table_with_checkpoint": ("delta_pruned_parquet", 0),
    "spark-shredded-variant-preview-delta": ("none", 1),  # variantShredding-preview
    "spark-variant-stable-feature-checkpoint": ("none", 1),  # data files not shipped
    "table-with-domain-metadata": ("none", 1),  # data files not shipped
    "table-with-dv-small": ("delta_scan_stream", 0),  # provider fails on DV projections (FACTS #4)
    "table_failed_last_checkpoint_update": ("delta_pruned_parquet", 0),
    "table_with_column_mapping": ("delta_table_provider", 0),  # the pruned reader refuses column mapping
    "table_with_liquid_clustering": ("delta_pruned_parquet", 0),  # deletionVectors enabled, none in use
    "with_checkpoint_no_last_checkpoint": ("none", 1),  # a data file not shipped
}


def run_doctor(*args: str, home: Path) -> tuple[int, str, str]:
    env = {**os.environ, "CODEANATOMY_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, "doctor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=env,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def run_json(uri: Path | str, home: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = run_doctor(str(uri), "--format", "json", *extra, home=home)
    assert "Traceback" not in err, err
    assert code in (0, 1), (code, err)
    report = json.loads(out)
    assert list(report) == list(REPORT_KEYS)
    for diagnostic in report["diagnostics"]:
        assert tuple(diagnostic) == DIAGNOSTIC_KEYS
    assert code == (1 if any(d["diagnostic.severity"] == "error" for d in report["diagnostics"]) else 0)
    return code, report, err


def by_code(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {d["code"]: (d["diagnostic.severity"], d["diagnostic.category"]) for d in report["diagnostics"]}


@pytest.fixture
def copy_table(delta_corpus: Path, tmp_path: Path) -> Any:
    def copy(name: str) -> Path:
        target = tmp_path / "tables" / name
        shutil.copytree(delta_corpus / name, target)
        for path in [target, *target.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        return target

    return copy


@pytest.mark.parametrize("name", CORPUS_TABLES)
def test_doctor_on_every_corpus_table(delta_corpus: Path, tmp_path: Path, name: str) -> None:
    code, report, _ = run_json(delta_corpus / name, tmp_path)
    expected = reference_read(delta_corpus / name)
    assert report["delta_log_present"] is True
    assert report["latest_version"] == expected["latest_version"]
    assert report["last_checkpoint_version"] == expected["checkpoint_version"]
    assert report["commits_since_checkpoint"] == expected["commits_since_checkpoint"]
    assert report["min_reader_version"] == expected["min_reader_version"]
    assert report["min_writer_version"] == expected["min_writer_version"]
    assert report["reader_features"] == expected["reader_features"]
    assert report["writer_features"] == expected["writer_features"]
    assert report["table_features"] == sorted(
        set(expected["reader_features"]) | set(expected["writer_features"])
    )
    mode, exit_expected = EXPECTED[name]
    assert (report["provider_mode"], code) == (mode, exit_expected)
    assert report["protocol_compatible"] is (mode != "none")
    assert set(report["compatibility"]) == {
        "delta_pruned_parquet",
        "delta_table_provider",
        "pyarrow_dataset",
        "delta_scan_stream",
    }
    for verdict in report["compatibility"].values():
        assert set(verdict) == {"compatible", "unsupported", "probe_error"}


def test_doctor_verdict_details(delta_corpus: Path, tmp_path: Path) -> None:
    _, mapped, _ = run_json(delta_corpus / "table_with_column_mapping", tmp_path)
    assert mapped["compatibility"]["pyarrow_dataset"] == {
        "compatible": False,
        "unsupported": ["columnMapping", "delta.columnMapping.mode=name"],
        "probe_error": None,
    }
    assert mapped["compatibility"]["delta_pruned_parquet"]["compatible"] is False
    assert by_code(mapped)["provider_mode_fallback"] == ("warn", "datafusion_provider")
    _, dv, _ = run_json(delta_corpus / "table-with-dv-small", tmp_path)
    assert dv["compatibility"]["delta_pruned_parquet"] == {
        "compatible": False,
        "unsupported": ["deletionVectors(in use: 1 live files)"],
        "probe_error": None,
    }
    assert dv["compatibility"]["delta_table_provider"]["compatible"] is False
    assert "CooperativeExec" in dv["compatibility"]["delta_table_provider"]["probe_error"]
    assert by_code(dv)["provider_mode_fallback"] == ("warn", "datafusion_provider")
    _, shredded, _ = run_json(delta_corpus / "spark-shredded-variant-preview-delta", tmp_path)
    assert by_code(shredded)["protocol_incompatible"] == ("error", "delta_protocol")
    _, missing, _ = run_json(delta_corpus / "checkpoints", tmp_path)
    assert by_code(missing)["missing_data_files"] == ("error", "delta_log")
    assert by_code(missing)["no_mode_reads_table"] == ("error", "delta_protocol")


def _rewrite_protocol(table: Path, protocol: dict[str, Any]) -> None:
    commit = table / "_delta_log" / f"{0:020d}.json"
    lines = [
        json.dumps({"protocol": protocol}) if "protocol" in json.loads(line) else line
        for line in commit.read_text().splitlines()
    ]
    commit.write_text("\n".join(lines) + "\n")


def _truncate_last_commit(table: Path) -> None:
    commit = table / "_delta_log" / f"{4:020d}.json"
    commit.write_bytes(commit.read_bytes()[:-40])


def _corrupt_checkpoint(table: Path) -> None:
    (table / "_delta_log" / f"{10:020d}.checkpoint.parquet").write_bytes(b"PAR1\x00garbage")


def _garbage_hint(table: Path) -> None:
    (table / "_delta_log" / "_last_checkpoint").write_bytes(b"\xff\xfe not json")


def _hint_nowhere(table: Path) -> None:
    (table / "_delta_log" / "_last_checkpoint").write_text('{"version": 3, "size": 5}')


def _missing_data_file(table: Path) -> None:
    next(table.glob("part-00000-2befed33*.parquet")).unlink()


def _version_gap(table: Path) -> None:
    (table / "_delta_log" / f"{2:020d}.json").unlink()


def _unknown_reader_feature(table: Path) -> None:
    _rewrite_protocol(
        table,
        {"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["zzz"], "writerFeatures": ["zzz"]},
    )


def _reader_version_4(table: Path) -> None:
    _rewrite_protocol(table, {"minReaderVersion": 4, "minWriterVersion": 7, "writerFeatures": []})


def _missing_sidecar(table: Path) -> None:
    for sidecar in (table / "_delta_log" / "_sidecars").glob("*.parquet"):
        sidecar.unlink()


def _no_log(table: Path) -> None:
    shutil.rmtree(table / "_delta_log")


# (damage, source table, {code: (severity, category)} that must be reported)
DAMAGES = [
    (_truncate_last_commit, "simple_table", {"corrupt_commit": ("error", "delta_log")}),
    (_corrupt_checkpoint, "simple_table_with_checkpoint", {"corrupt_checkpoint": ("error", "delta_log")}),
    (_garbage_hint, "simple_table_with_checkpoint", {"corrupt_last_checkpoint": ("warn", "delta_log")}),
    (
        _hint_nowhere,
        "simple_table",
        {
            "stale_last_checkpoint": ("warn", "delta_log"),
            "provider_mode_none": ("error", "datafusion_provider"),
        },
    ),
    (_missing_data_file, "simple_table", {"missing_data_files": ("error", "delta_log")}),
    (_version_gap, "simple_table", {"version_gap": ("error", "delta_log")}),
    (_unknown_reader_feature, "simple_table", {"protocol_incompatible": ("error", "delta_protocol")}),
    (_reader_version_4, "simple_table", {"protocol_incompatible": ("error", "delta_protocol")}),
    (_missing_sidecar, "checkpoint-v2-table", {"missing_sidecar": ("error", "delta_log")}),
    (_no_log, "simple_table", {"delta_log_missing": ("error", "delta_log")}),
]


@pytest.mark.parametrize(
    ("damage", "source", "expected"), DAMAGES, ids=[d[0].__name__.strip("_") for d in DAMAGES]
)
def test_doctor_on_damaged_copies(
    copy_table: Any, tmp_path: Path, damage: Any, source: str, expected: dict[str, tuple[str, str]]
) -> None:
    table = copy_table(source)
    damage(table)
    code, report, _ = run_json(table, tmp_path)
    found = by_code(report)
    for key, value in expected.items():
        assert found.get(key) == value, found
    if "error" in {severity for severity, _ in expected.values()}:
        assert code == 1
    if damage in (_unknown_reader_feature, _reader_version_4):
        token = "zzz" if damage is _unknown_reader_feature else "minReaderVersion=4"
        assert all(token in v["unsupported"] for v in report["compatibility"].values())
        assert report["provider_mode"] == "none"


def test_markdown_output(delta_corpus: Path, tmp_path: Path) -> None:
    code, out, err = run_doctor(str(delta_corpus / "table-with-dv-small"), home=tmp_path)
    assert code == 0, err
    assert out.startswith("# codeanatomy doctor:")
    assert "| provider_mode | delta_scan_stream |" in out
    assert "## Provider modes" in out
    assert "## Diagnostics" in out


def test_malformed_storage_option_is_a_usage_error(delta_corpus: Path, tmp_path: Path) -> None:
    code, out, err = run_doctor(
        str(delta_corpus / "simple_table"), "--storage-option", "NO_EQUALS_SIGN_secretvalue", home=tmp_path
    )
    assert code == 2
    assert out == ""
    assert "KEY=VALUE" in err
    assert "secretvalue" not in err
    assert "Traceback" not in err


def test_secrets_are_never_printed(tmp_path: Path) -> None:
    secret = "canary-secret-91b2"
    options = [
        "AWS_ENDPOINT_URL=http://127.0.0.1:9",
        "AWS_ALLOW_HTTP=true",
        "AWS_REGION=us-east-1",
        "AWS_ACCESS_KEY_ID=canary-access-key",
        f"AWS_SECRET_ACCESS_KEY={secret}",
        "max_retries=0",
    ]
    flags = [token for option in options for token in ("--storage-option", option)]
    code, report, err = run_json("s3://bucket/table", tmp_path, *flags)
    text = json.dumps(report) + err
    assert code == 1
    assert secret not in text
    assert "canary-access-key" not in text
    assert by_code(report)["log_not_readable_directly"] == ("warn", "delta_log")
    assert report["provider_mode"] == "none"


def test_in_process_api(delta_corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = diagnose(str(delta_corpus / "simple_table_with_checkpoint"))
    assert list(report) == list(REPORT_KEYS)
    assert exit_code(report) == 0
    assert "| last_checkpoint_version | 10 |" in render_markdown(report)
    assert doctor(str(delta_corpus / "simple_table"), format="json") == 0
    assert json.loads(capsys.readouterr().out)["provider_mode"] == "delta_pruned_parquet"
    assert parse_storage_options(["A=1", "B=x=y"]) == {"A": "1", "B": "x=y"}
    with pytest.raises(ValueError, match="#2"):
        parse_storage_options(["A=1", "=v"])
