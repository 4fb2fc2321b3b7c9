"""``codeanatomy doctor --fix [--apply]`` and ``--recursive`` end to end, in a subprocess as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, PostCommitHookProperties, write_deltalake

from codeanatomy_assets.delta.doctor import REPORT_KEYS
from codeanatomy_assets_tests.test_doctor import run_doctor


@pytest.fixture
def small_files(tmp_path: Path) -> Path:
    """40 appends of 4 rows (40 small files, past the 32 that warn) and no checkpoint."""
    uri = tmp_path / "small"
    hook = PostCommitHookProperties(create_checkpoint=False, cleanup_expired_logs=False)
    for i in range(40):
        rows = pa.table({"id": pa.array(range(i * 4, i * 4 + 4), pa.int64())})
        write_deltalake(str(uri), rows, mode="append", post_commithook_properties=hook)
    return uri


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _rows(uri: Path) -> list[int]:
    return sorted(DeltaTable(str(uri)).to_pyarrow_table().column("id").to_pylist())


def test_fix_is_a_dry_run(small_files: Path, tmp_path: Path) -> None:
    before = _tree(small_files)
    code, out, err = run_doctor(
        str(small_files), "--fix", "--small-file-mb", "1", "--format", "json", home=tmp_path
    )
    report = json.loads(out)
    assert code == 0 and "Traceback" not in err
    assert list(report) == list(REPORT_KEYS)
    assert report["maintenance"]["mode"] == "dry_run" and report["maintenance"]["outcomes"] is None
    assert [s["treatment"] for s in report["maintenance"]["steps"]] == ["optimize_compact"]
    assert _tree(small_files) == before


def test_fix_apply_treats_and_keeps_the_rows(small_files: Path, tmp_path: Path) -> None:
    rows, version = _rows(small_files), DeltaTable(str(small_files)).version()
    code, out, err = run_doctor(str(small_files), "--fix", "--apply", "--format", "json", home=tmp_path)
    report = json.loads(out)
    assert code == 0, err
    outcome = report["maintenance"]["outcomes"][0]
    assert outcome["status"] == "applied"
    assert outcome["before"]["file_count"] == 40 and outcome["after"]["file_count"] == 1
    assert report["layout"]["file_count"] == 1
    assert "many_small_files" not in {f["code"] for f in report["layout"]["findings"]}
    assert _rows(small_files) == rows
    history = DeltaTable(str(small_files)).history()
    assert [h["operation"] for h in history if h["version"] > version] == ["OPTIMIZE"]
    code, out, _ = run_doctor(str(small_files), "--fix", "--apply", home=tmp_path)
    assert code == 0 and "Nothing to do" in out


def test_fix_apply_refuses_a_table_deltalake_cannot_write(delta_corpus: Path, tmp_path: Path) -> None:
    table = Path(shutil.copytree(delta_corpus / "cdc_ict_table", tmp_path / "cdc"))
    before = _tree(table)
    code, out, _ = run_doctor(str(table), "--fix", "--apply", "--format", "json", home=tmp_path)
    report = json.loads(out)
    assert code == 0
    assert "inCommitTimestamp" in report["maintenance"]["refused"]
    assert any(d["code"] == "maintenance_refused" for d in report["diagnostics"])
    assert _tree(table) == before


def test_apply_without_fix_is_a_usage_error(small_files: Path, tmp_path: Path) -> None:
    code, out, err = run_doctor(str(small_files), "--apply", home=tmp_path)
    assert code == 2 and not out
    assert err.strip().splitlines() == [
        "codeanatomy doctor: --apply runs the maintenance plan of --fix; pass both: --fix --apply"
    ]


def test_recursive_over_the_corpus(delta_corpus: Path, tmp_path: Path) -> None:
    tables = sorted(p.name for p in delta_corpus.iterdir() if (p / "_delta_log").is_dir())
    code, out, err = run_doctor(str(delta_corpus), "--recursive", "--format", "json", home=tmp_path)
    document = json.loads(out)
    assert "Traceback" not in err
    assert sorted(Path(r["uri"]).name for r in document["tables"]) == tables
    worst = [
        max((d["diagnostic.severity"] for d in r["diagnostics"]), key=["info", "warn", "error"].index)
        for r in document["tables"]
    ]
    assert worst == sorted(worst, key=["error", "warn", "info"].index)  # worst first
    assert code == (1 if "error" in worst else 0)
    code, markdown, _ = run_doctor(str(delta_corpus), "--recursive", home=tmp_path)
    assert sum(1 for line in markdown.splitlines() if line.startswith("| `")) == len(tables)


def test_recursive_over_a_folder_without_tables(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, out, _ = run_doctor(str(tmp_path / "empty"), "--recursive", "--format", "json", home=tmp_path)
    assert code == 0 and json.loads(out)["tables"] == []
