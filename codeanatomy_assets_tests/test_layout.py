"""Table layout health and maintenance: every figure against an independent computation from the log, each
synthetic problem producing its finding, and the treatment fixing it without changing the rows."""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, PostCommitHookProperties, write_deltalake

from codeanatomy_assets.delta.layout import (
    LayoutFindingCode,
    LayoutThresholds,
    TableLayout,
    read_table_layout,
)
from codeanatomy_assets.delta.maintenance import apply_plan, plan_maintenance
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets_tests.conftest import CORPUS

NO_CHECKPOINT = PostCommitHookProperties(create_checkpoint=False, cleanup_expired_logs=False)


# ----------------------------------------------------------------------------------------------------
# The independent computation: a plain replay of the JSON commits (tables without a checkpoint) and
# deltalake's own add actions (every table deltalake opens).


def _json_replay(table: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], dict[str, Any]]:
    """(live adds, tombstones, metaData) from every ``<v>.json`` commit, in version order."""
    adds: dict[str, dict[str, Any]] = {}
    removes: dict[str, dict[str, Any]] = {}
    metadata: dict[str, Any] = {}
    for commit in sorted((table / "_delta_log").glob("[0-9]" * 20 + ".json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line) if line.strip() else {}
            metadata = action.get("metaData", metadata)
            if "add" in action:
                adds[action["add"]["path"]] = action["add"]
                removes.pop(action["add"]["path"], None)
            if "remove" in action:
                adds.pop(action["remove"]["path"], None)
                removes[action["remove"]["path"]] = action["remove"]
    return adds, removes, metadata


def _has_checkpoint(table: Path) -> bool:
    return any((table / "_delta_log").glob("*.checkpoint*"))


def _expected_from_json(table: Path) -> dict[str, Any]:
    adds, removes, metadata = _json_replay(table)
    stats = [json.loads(a["stats"]) if a.get("stats") else None for a in adds.values()]
    with_stats = [s for s in stats if s and "numRecords" in s]
    partitions = set(metadata.get("partitionColumns") or [])
    columns = {
        c: p
        for c, p in _leaves(json.loads(metadata["schemaString"])["fields"]).items()
        if c not in partitions
    }
    coverage = {
        c: sum(1 for s in with_stats if _present(s.get("minValues"), p) and _present(s.get("maxValues"), p))
        for c, p in columns.items()
    }
    return {
        "file_count": len(adds),
        "total_bytes": sum(a["size"] for a in adds.values()),
        "files_with_stats": len(with_stats),
        "tombstones": len(removes),
        "tombstones_present": sum(1 for p in removes if (table / p).exists()),
        "coverage": coverage,
        "total_rows": sum(s["numRecords"] for s in with_stats) if len(with_stats) == len(adds) else None,
    }


def _leaves(fields: list[dict[str, Any]], prefix: str = "", physical: str = "") -> dict[str, str]:
    """Dotted paths of the schema's leaf columns: logical → physical (stats use the physical names)."""
    out: dict[str, str] = {}
    for f in fields:
        kind = f["type"]
        name = f"{prefix}{f['name']}"
        phys = physical + (f.get("metadata") or {}).get("delta.columnMapping.physicalName", f["name"])
        if isinstance(kind, dict) and kind.get("type") == "struct":
            out |= _leaves(kind["fields"], f"{name}.", f"{phys}.")
        else:
            out[name] = phys
    return out


def _present(values: Any, path: str) -> bool:
    for part in path.split("."):
        if not isinstance(values, dict) or part not in values:
            return False
        values = values[part]
    return not isinstance(values, dict)


def _flat_coverage(layout: TableLayout) -> dict[str, int]:
    return {c.column: c.files_with_min_max for c in layout.column_stats}


def _deltalake_actions(table: Path) -> list[dict[str, Any]] | None:
    try:
        return DeltaTable(str(table)).get_add_actions(flatten=True).to_pylist()
    except Exception:  # noqa: BLE001 - tables deltalake refuses are compared through the JSON replay only
        return None


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*") if p.is_dir()))
def test_corpus_figures_equal_an_independent_replay(delta_corpus: Path, name: str) -> None:
    table = delta_corpus / name
    layout = read_table_layout(str(table))
    assert all(f.code is not LayoutFindingCode.LAYOUT_INCOMPLETE for f in layout.findings), layout.findings
    actions = _deltalake_actions(table)
    if actions is not None:
        assert layout.file_count == len(actions)
        assert layout.total_bytes == sum(a["size_bytes"] for a in actions)
        assert sum(layout.size_histogram.values()) == layout.file_count
    if not _has_checkpoint(table):
        expected = _expected_from_json(table)
        coverage = expected.pop("coverage")
        for key, value in expected.items():
            assert getattr(layout, key) == value, key
        assert _flat_coverage(layout) == coverage


# ----------------------------------------------------------------------------------------------------
# Synthetic tables, one problem each


def _append(
    uri: Path, rows: range, *, part: str | None = None, configuration: dict[str, str] | None = None
) -> None:
    data = {"id": pa.array(list(rows), pa.int64()), "name": pa.array([f"n{i}" for i in rows])}
    if part is not None:
        data["part"] = pa.array([part] * len(rows))
    write_deltalake(
        str(uri),
        pa.table(data),
        mode="append",
        partition_by=["part"] if part is not None else None,
        configuration=configuration,
        post_commithook_properties=NO_CHECKPOINT,
    )


@pytest.fixture
def many_commits(tmp_path: Path) -> Path:
    """120 single-row commits and no checkpoint (the writer's checkpoint hook off)."""
    uri = tmp_path / "many_commits"
    for i in range(120):
        _append(uri, range(i, i + 1))
    return uri


@pytest.fixture
def small_files(tmp_path: Path) -> Path:
    """40 appends of 5 rows each under a checkpoint interval of 1000: 40 small files, no checkpoint lag."""
    uri = tmp_path / "small_files"
    for i in range(40):
        _append(
            uri,
            range(i * 5, i * 5 + 5),
            configuration={"delta.checkpointInterval": "1000"} if i == 0 else None,
        )
    return uri


@pytest.fixture
def vacuum_debt(tmp_path: Path) -> Path:
    """Rows deleted (files rewritten, the old ones tombstoned) under a one-second deleted-file retention."""
    uri = tmp_path / "vacuum_debt"
    config = {"delta.deletedFileRetentionDuration": "interval 1 second"}
    _append(uri, range(10), configuration=config)
    _append(uri, range(10, 20))
    DeltaTable(str(uri)).delete("id < 5", post_commithook_properties=NO_CHECKPOINT)
    time.sleep(1.2)
    return uri


@pytest.fixture
def stale_stats(tmp_path: Path) -> Path:
    """Three files with min/max on every column, then statistics turned off: two files without min/max."""
    uri = tmp_path / "stale_stats"
    for i in range(3):
        _append(uri, range(i * 3, i * 3 + 3))
    DeltaTable(str(uri)).alter.set_table_properties({"delta.dataSkippingNumIndexedCols": "0"})
    for i in range(3, 5):
        _append(uri, range(i * 3, i * 3 + 3))
    return uri


@pytest.fixture
def skewed(tmp_path: Path) -> Path:
    """One partition of 20,000 rows beside four of 3 rows."""
    uri = tmp_path / "skewed"
    _append(uri, range(20_000), part="big")
    for p in "abcd":
        _append(uri, range(3), part=p)
    return uri


@pytest.fixture
def deletion_vectors(delta_corpus: Path, tmp_path: Path) -> Path:
    """A corpus table (written by Spark) whose one file carries a deletion vector."""
    return Path(shutil.copytree(delta_corpus / "table-with-dv-small", tmp_path / "dv"))


def _codes(layout: TableLayout) -> dict[LayoutFindingCode, Severity]:
    return {f.code: f.severity for f in layout.findings}


def test_many_commits_without_checkpoint_is_checkpoint_lag(many_commits: Path) -> None:
    layout = read_table_layout(str(many_commits))
    assert layout.commits_since_checkpoint == 120
    assert layout.json_bytes_since_checkpoint == sum(
        p.stat().st_size for p in (many_commits / "_delta_log").glob("*.json")
    )
    assert _codes(layout)[LayoutFindingCode.CHECKPOINT_LAG] is Severity.WARN


def test_small_files_are_found_and_counted(small_files: Path) -> None:
    layout = read_table_layout(str(small_files))
    sizes = [f.stat().st_size for f in small_files.glob("*.parquet")]
    assert layout.file_count == len(sizes) == 40
    assert layout.small_files == 40 and layout.size_histogram["<1MiB"] == 40
    assert _codes(layout)[LayoutFindingCode.MANY_SMALL_FILES] is Severity.WARN
    assert LayoutFindingCode.CHECKPOINT_LAG not in _codes(layout)


def test_vacuum_debt_counts_removed_files_still_present(vacuum_debt: Path) -> None:
    layout = read_table_layout(str(vacuum_debt))
    _, removes, _ = _json_replay(vacuum_debt)
    assert layout.tombstones == len(removes) == 1
    assert layout.tombstones_present == layout.tombstones_past_retention == 1
    assert layout.oldest_deletion_timestamp_ms == min(r["deletionTimestamp"] for r in removes.values())
    assert _codes(layout)[LayoutFindingCode.VACUUM_DEBT] is Severity.WARN


def test_stale_stats_are_partial_coverage(stale_stats: Path) -> None:
    layout = read_table_layout(str(stale_stats))
    assert _flat_coverage(layout) == _expected_from_json(stale_stats)["coverage"] == {"id": 3, "name": 3}
    assert layout.files_with_stats == 5
    assert _codes(layout)[LayoutFindingCode.STATS_PARTIAL] is Severity.WARN


def test_skewed_partitions(skewed: Path) -> None:
    layout = read_table_layout(str(skewed), thresholds=LayoutThresholds(small_file_bytes=1024))
    adds, _, _ = _json_replay(skewed)
    by_partition: dict[str, int] = {}
    for add in adds.values():
        by_partition[add["partitionValues"]["part"]] = (
            by_partition.get(add["partitionValues"]["part"], 0) + add["size"]
        )
    assert layout.partition_count == 5
    assert layout.largest_partition_bytes == max(by_partition.values())
    assert layout.median_partition_bytes == statistics.median(by_partition.values())
    assert _codes(layout)[LayoutFindingCode.PARTITION_SKEW] is Severity.WARN


def test_deletion_vectors_share(deletion_vectors: Path) -> None:
    layout = read_table_layout(str(deletion_vectors))
    adds, _, _ = _json_replay(deletion_vectors)
    vectors = [a["deletionVector"] for a in adds.values() if a.get("deletionVector")]
    assert layout.files_with_deletion_vectors == len(vectors) == 1
    assert layout.rows_deleted_by_deletion_vectors == sum(v["cardinality"] for v in vectors)
    assert _codes(layout)[LayoutFindingCode.DELETION_VECTORS] is Severity.WARN


def test_crc_mismatch_is_found(tmp_path: Path, delta_corpus: Path) -> None:
    table = Path(shutil.copytree(delta_corpus / "COVID-19_NYT", tmp_path / "covid"))
    assert read_table_layout(str(table)).crc_checked == 1
    crc = table / "_delta_log" / ("0" * 20 + ".crc")
    crc.write_text(json.dumps({**json.loads(crc.read_text()), "numFiles": 99}))
    assert _codes(read_table_layout(str(table)))[LayoutFindingCode.CRC_MISMATCH] is Severity.WARN


# ----------------------------------------------------------------------------------------------------
# Treatment


def _rows(uri: Path) -> list[tuple[Any, ...]]:
    table = DeltaTable(str(uri)).to_pyarrow_table()
    return sorted(tuple(r.values()) for r in table.to_pylist())


@pytest.fixture(params=["many_commits", "small_files", "vacuum_debt"])
def treatable(request: pytest.FixtureRequest) -> tuple[Path, LayoutFindingCode]:
    code = {
        "many_commits": LayoutFindingCode.CHECKPOINT_LAG,
        "small_files": LayoutFindingCode.MANY_SMALL_FILES,
        "vacuum_debt": LayoutFindingCode.VACUUM_DEBT,
    }[request.param]
    return request.getfixturevalue(request.param), code


def test_apply_fixes_the_finding_and_keeps_the_rows(treatable: tuple[Path, LayoutFindingCode]) -> None:
    uri, code = treatable
    assert code in _codes(read_table_layout(str(uri)))
    rows, version = _rows(uri), DeltaTable(str(uri)).version()
    plan = plan_maintenance(str(uri))
    assert plan.refused is None and plan.steps
    outcomes = apply_plan(plan)
    assert [o.status for o in outcomes] == ["applied"] * len(plan.steps), [o.error for o in outcomes]
    assert code not in _codes(read_table_layout(str(uri)))
    assert _rows(uri) == rows
    operations = {h["operation"] for h in DeltaTable(str(uri)).history() if h["version"] > version}
    if code is not LayoutFindingCode.CHECKPOINT_LAG:
        assert operations & {"OPTIMIZE", "VACUUM END"}
    else:
        assert any((uri / "_delta_log").glob("*.checkpoint.parquet"))


def test_dry_run_changes_nothing(small_files: Path) -> None:
    before = sorted(p.name for p in small_files.rglob("*"))
    plan = plan_maintenance(str(small_files))
    assert [s.treatment.value for s in plan.steps] == ["optimize_compact"]
    assert sorted(p.name for p in small_files.rglob("*")) == before


@pytest.mark.parametrize("name", ["cdc_ict_table", "table-with-domain-metadata", "simple_table_features"])
def test_refuses_tables_deltalake_cannot_write(delta_corpus: Path, tmp_path: Path, name: str) -> None:
    table = shutil.copytree(delta_corpus / name, tmp_path / name)
    before = sorted(p.name for p in Path(table).rglob("*"))
    plan = plan_maintenance(str(table))
    assert plan.refused and not plan.steps
    assert apply_plan(plan) == []
    assert sorted(p.name for p in Path(table).rglob("*")) == before


def test_refuses_a_damaged_log(small_files: Path) -> None:
    (small_files / "_delta_log" / ("0" * 19 + "3.json")).write_text("{not json\n")
    plan = plan_maintenance(str(small_files))
    assert plan.refused is not None and "damaged" in plan.refused
