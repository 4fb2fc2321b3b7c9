"""Reading ``_delta_log`` directly: the corpus, damaged copies, and fuzzed logs.

Expected values come from :func:`reference_read`, a deliberately simple reader of the JSON commits,
``_last_checkpoint`` and the checkpoint's protocol written here from the Delta protocol specification,
independent of :mod:`codeanatomy_assets.delta.log`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codeanatomy_assets.delta.data_files import deletion_vector_location
from codeanatomy_assets.delta.health import (
    CheckpointKind,
    LastCheckpointState,
    LogFindingCode,
    LogHealth,
    LogSource,
    effective_features,
)
from codeanatomy_assets.delta.log import read_log_health
from codeanatomy_assets.delta.storage import open_filesystem
from codeanatomy_assets.diagnostics.taxonomy import Severity

CORPUS_TABLES = (
    "COVID-19_NYT",
    "cdc_ict_table",
    "checkpoint-v2-table",
    "checkpoints",
    "delta-0.8-empty",
    "delta-0.8.0-partitioned",
    "http_requests",
    "issue-2152",
    "latest_not_checkpointed",
    "simple_table",
    "simple_table_features",
    "simple_table_with_checkpoint",
    "spark-shredded-variant-preview-delta",
    "spark-variant-stable-feature-checkpoint",
    "table-with-domain-metadata",
    "table-with-dv-small",
    "table_failed_last_checkpoint_update",
    "table_with_column_mapping",
    "table_with_liquid_clustering",
    "with_checkpoint_no_last_checkpoint",
)

_LEGACY_READER = {1: set(), 2: {"columnMapping"}}
_LEGACY_WRITER = {
    1: set(),
    2: {"appendOnly", "invariants"},
    3: {"appendOnly", "invariants", "checkConstraints"},
    4: {"appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns"},
    5: {
        "appendOnly",
        "invariants",
        "checkConstraints",
        "changeDataFeed",
        "generatedColumns",
        "columnMapping",
    },
    6: {
        "appendOnly",
        "invariants",
        "checkConstraints",
        "changeDataFeed",
        "generatedColumns",
        "columnMapping",
        "identityColumns",
    },
}


def reference_read(table: Path) -> dict[str, Any]:
    """The independent reading: latest version, checkpoint, protocol, effective features."""
    log = table / "_delta_log"
    names = os.listdir(log)
    commits = sorted(int(n[:20]) for n in names if re.fullmatch(r"\d{20}\.json", n))
    checkpoints: dict[int, str] = {}
    for name in names:
        if re.fullmatch(r"\d{20}\.checkpoint(\.[0-9a-f-]{36})?\.(parquet|json)", name):
            checkpoints[int(name[:20])] = name
    latest = max([*commits, *checkpoints], default=None)
    checkpoint = max((v for v in checkpoints if latest is not None and v <= latest), default=None)
    protocol = None
    if checkpoint is not None:
        name = checkpoints[checkpoint]
        if name.endswith(".json"):
            for line in (log / name).read_text().splitlines():
                protocol = json.loads(line).get("protocol", protocol)
        else:
            rows = pq.read_table(log / name, columns=["protocol"]).column("protocol").to_pylist()
            protocol = next(r for r in rows if r)
    for version in commits:
        if checkpoint is not None and version <= checkpoint:
            continue
        for line in (log / f"{version:020d}.json").read_text().splitlines():
            if line.strip():
                protocol = json.loads(line).get("protocol", protocol)
    hint = None
    if (log / "_last_checkpoint").exists():
        hint = json.loads((log / "_last_checkpoint").read_text())["version"]
    reader, writer = protocol["minReaderVersion"], protocol["minWriterVersion"]
    readers = _LEGACY_READER.get(reader, set(protocol.get("readerFeatures") or ()))
    writers = _LEGACY_WRITER.get(writer, set(protocol.get("writerFeatures") or ()))
    return {
        "latest_version": latest,
        "checkpoint_version": checkpoint,
        "commits_since_checkpoint": sum(1 for v in commits if checkpoint is None or v > checkpoint),
        "hint_version": hint,
        "min_reader_version": reader,
        "min_writer_version": writer,
        "reader_features": sorted(readers),
        "writer_features": sorted(writers),
    }


@pytest.fixture
def copy_table(delta_corpus: Path, tmp_path: Path) -> Any:
    """Copy a corpus table to a writable temporary folder (the corpus is read-only)."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(delta_corpus / name, target)
        for path in [target, *target.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        return target

    return copy


def codes(health: LogHealth) -> dict[str, Severity]:
    return {f.code.value: f.severity for f in health.findings}


# ----------------------------------------------------------------------------------------------------
# The corpus


@pytest.mark.parametrize("name", CORPUS_TABLES)
def test_corpus_agrees_with_reference_reading(delta_corpus: Path, name: str) -> None:
    health = read_log_health(str(delta_corpus / name))
    expected = reference_read(delta_corpus / name)
    assert health.source is LogSource.DIRECT
    assert health.delta_log_present
    assert health.latest_version == expected["latest_version"]
    assert health.last_checkpoint_version == expected["checkpoint_version"]
    assert health.commits_since_checkpoint == expected["commits_since_checkpoint"]
    assert health.last_checkpoint.version == expected["hint_version"]
    assert health.min_reader_version == expected["min_reader_version"]
    assert health.min_writer_version == expected["min_writer_version"]
    assert list(health.reader_features) == expected["reader_features"]
    assert list(health.writer_features) == expected["writer_features"]
    assert list(health.table_features) == sorted(
        set(expected["reader_features"]) | set(expected["writer_features"])
    )
    json.dumps(health.to_row())  # JSON-ready


def test_corpus_specifics(delta_corpus: Path) -> None:
    v2 = read_log_health(str(delta_corpus / "checkpoint-v2-table"))
    assert v2.checkpoint is not None
    assert v2.checkpoint.kind is CheckpointKind.V2_UUID
    assert v2.checkpoint.v2_spec
    assert len(v2.checkpoint.sidecars) == 1
    assert not v2.checkpoint.sidecars_missing
    assert v2.last_checkpoint.state is LastCheckpointState.OK

    failed = read_log_health(str(delta_corpus / "table_failed_last_checkpoint_update"))
    assert failed.last_checkpoint.state is LastCheckpointState.BEHIND
    assert failed.last_checkpoint_version == 3
    assert "size_in_bytes" in failed.last_checkpoint.fields  # extra fields tolerated
    assert codes(failed) == {"last_checkpoint_behind": Severity.INFO}

    no_hint = read_log_health(str(delta_corpus / "with_checkpoint_no_last_checkpoint"))
    assert no_hint.last_checkpoint.state is LastCheckpointState.MISSING
    assert no_hint.last_checkpoint_version == 2
    assert no_hint.checkpoint_interval == 2
    assert codes(no_hint)["missing_data_files"] is Severity.ERROR

    dm = read_log_health(str(delta_corpus / "table-with-domain-metadata"))
    assert (dm.latest_version, dm.last_checkpoint_version, dm.commits_since_checkpoint) == (108, 108, 0)
    assert dm.deletion_vectors_enabled
    assert dm.data_files_missing == dm.live_files == 109
    assert not any(g.blocking for g in dm.version_gaps)  # cleaned-up history is not a gap

    mapped = read_log_health(str(delta_corpus / "table_with_column_mapping"))
    assert mapped.column_mapping_mode == "name"
    assert mapped.reader_features == ("columnMapping",)  # implied by reader version 2

    dv = read_log_health(str(delta_corpus / "table-with-dv-small"))
    assert dv.deletion_vector_files_missing == 0
    assert dv.severity is Severity.INFO

    for name in ("checkpoints", "latest_not_checkpointed", "spark-variant-stable-feature-checkpoint"):
        assert codes(read_log_health(str(delta_corpus / name)))["missing_data_files"] is Severity.ERROR
    for name in ("simple_table", "COVID-19_NYT", "table_with_liquid_clustering", "cdc_ict_table"):
        assert read_log_health(str(delta_corpus / name)).findings == ()


@pytest.mark.parametrize(
    ("reader", "writer", "readers", "writers"),
    [
        (1, 1, (), ()),
        (1, 2, (), ("appendOnly", "invariants")),
        (1, 3, (), ("appendOnly", "checkConstraints", "invariants")),
        (2, 5, ("columnMapping",), tuple(sorted(_LEGACY_WRITER[5]))),
        (1, 6, (), tuple(sorted(_LEGACY_WRITER[6]))),
        (3, 7, ("deletionVectors",), ("appendOnly", "deletionVectors")),
    ],
)
def test_effective_features(
    reader: int, writer: int, readers: tuple[str, ...], writers: tuple[str, ...]
) -> None:
    assert effective_features(reader, writer, ["deletionVectors"], ["deletionVectors", "appendOnly"]) == (
        readers,
        writers,
    )


def test_deletion_vector_paths() -> None:
    dv = {"storageType": "u", "pathOrInlineDv": "ab" + "vBn[lx{q8@P<9BNH/isA"}
    assert (
        deletion_vector_location("/t", dv) == "/t/ab/deletion_vector_61d16c75-6994-46b7-a15b-8b538852e50e.bin"
    )
    assert deletion_vector_location("/t", {"storageType": "i", "pathOrInlineDv": "xyz"}) is None
    assert (
        deletion_vector_location("/t", {"storageType": "p", "pathOrInlineDv": "file:///a/b.bin"})
        == "/a/b.bin"
    )


# ----------------------------------------------------------------------------------------------------
# Damaged copies


def _log(table: Path) -> Path:
    return table / "_delta_log"


def _rewrite_protocol(table: Path, protocol: dict[str, Any]) -> None:
    commit = _log(table) / f"{0:020d}.json"
    lines = [
        json.dumps({"protocol": protocol}) if "protocol" in json.loads(line) else line
        for line in commit.read_text().splitlines()
    ]
    commit.write_text("\n".join(lines) + "\n")


def test_missing_and_empty_log(tmp_path: Path) -> None:
    missing = read_log_health(str(tmp_path))
    assert not missing.delta_log_present
    assert codes(missing) == {"delta_log_missing": Severity.ERROR}
    (tmp_path / "_delta_log").mkdir()
    empty = read_log_health(str(tmp_path))
    assert empty.delta_log_present
    assert empty.latest_version is None
    assert codes(empty) == {"no_commits": Severity.ERROR}


def test_truncated_commit(copy_table: Any) -> None:
    table = copy_table("simple_table")
    commit = _log(table) / f"{4:020d}.json"
    commit.write_bytes(commit.read_bytes()[:-40])
    health = read_log_health(str(table))
    assert codes(health)["corrupt_commit"] is Severity.ERROR
    assert health.latest_version == 4


def test_empty_commit(copy_table: Any) -> None:
    table = copy_table("simple_table")
    (_log(table) / f"{3:020d}.json").write_text("")
    assert codes(read_log_health(str(table)))["empty_commit"] is Severity.ERROR


def test_corrupt_checkpoint_falls_back_to_commits(copy_table: Any) -> None:
    table = copy_table("simple_table_with_checkpoint")
    (_log(table) / f"{10:020d}.checkpoint.parquet").write_bytes(b"PAR1 not really parquet")
    health = read_log_health(str(table))
    assert codes(health)["corrupt_checkpoint"] is Severity.ERROR
    assert health.last_checkpoint_version is None
    assert health.commits_since_checkpoint == 11
    assert health.min_writer_version == 2  # rebuilt from the commits
    assert health.data_files_missing == 0


@pytest.mark.parametrize(
    ("content", "state", "code"),
    [
        ("", LastCheckpointState.EMPTY, "last_checkpoint_empty"),
        ("\x00\x01garbage{", LastCheckpointState.CORRUPT, "corrupt_last_checkpoint"),
        ('{"size": 3}', LastCheckpointState.CORRUPT, "corrupt_last_checkpoint"),
        ('{"version": "10"}', LastCheckpointState.CORRUPT, "corrupt_last_checkpoint"),
        ("[10]", LastCheckpointState.CORRUPT, "corrupt_last_checkpoint"),
        ('{"version": 7, "size": 13}', LastCheckpointState.STALE, "stale_last_checkpoint"),
        ('{"version": 10, "size": 13, "parts": 3}', LastCheckpointState.STALE, "stale_last_checkpoint"),
        ('{"version": 99, "size": 13}', LastCheckpointState.AHEAD_OF_LOG, "last_checkpoint_ahead_of_log"),
        ('{"version": 10, "size": 13, "future": {"x": 1}}', LastCheckpointState.OK, None),
    ],
)
def test_last_checkpoint_states(
    copy_table: Any, content: str, state: LastCheckpointState, code: str | None
) -> None:
    table = copy_table("simple_table_with_checkpoint")
    (_log(table) / "_last_checkpoint").write_text(content)
    health = read_log_health(str(table))
    assert health.last_checkpoint.state is state
    assert health.last_checkpoint_version == 10  # the listing decides, not the hint
    if code is None:
        assert health.findings == ()
    else:
        assert codes(health) == {code: Severity.WARN}


def test_missing_data_file(copy_table: Any) -> None:
    table = copy_table("simple_table")
    victim = next(table.glob("part-00000-2befed33*.parquet"))
    victim.unlink()
    health = read_log_health(str(table))
    assert health.data_files_missing == 1
    assert health.missing_data_file_examples == (victim.name,)
    assert codes(health) == {"missing_data_files": Severity.ERROR}


def test_missing_deletion_vector_file(copy_table: Any) -> None:
    table = copy_table("table-with-dv-small")
    next(table.glob("deletion_vector_*.bin")).unlink()
    health = read_log_health(str(table))
    assert health.deletion_vector_files_missing == 1
    assert codes(health) == {"missing_deletion_vector_files": Severity.ERROR}


def test_version_gap_after_checkpoint_and_without_one(copy_table: Any) -> None:
    table = copy_table("simple_table")
    (_log(table) / f"{2:020d}.json").unlink()
    health = read_log_health(str(table))
    assert [(g.start, g.end, g.blocking) for g in health.version_gaps] == [(2, 2, True)]
    assert codes(health) == {"version_gap": Severity.ERROR}

    checkpointed = copy_table("simple_table_with_checkpoint")
    (_log(checkpointed) / f"{4:020d}.json").unlink()  # before the checkpoint: history only
    health = read_log_health(str(checkpointed))
    assert codes(health) == {"history_gap": Severity.INFO}


def test_data_file_check_is_capped(delta_corpus: Path) -> None:
    health = read_log_health(str(delta_corpus / "COVID-19_NYT"), data_file_check_limit=3)
    assert health.data_files_checked == 3
    assert codes(health) == {"data_file_check_truncated": Severity.INFO}


def test_checkpoint_overdue(copy_table: Any) -> None:
    table = copy_table("simple_table")
    commit = _log(table) / f"{0:020d}.json"
    text = commit.read_text().replace(
        '"configuration":{}', '"configuration":{"delta.checkpointInterval":"2"}'
    )
    commit.write_text(text)
    health = read_log_health(str(table))
    assert health.checkpoint_interval == 2
    assert codes(health) == {"checkpoint_overdue": Severity.WARN}


def test_unknown_reader_feature_and_reader_version_4_are_read(copy_table: Any) -> None:
    table = copy_table("simple_table")
    _rewrite_protocol(
        table,
        {"minReaderVersion": 3, "minWriterVersion": 7, "readerFeatures": ["zzz"], "writerFeatures": ["zzz"]},
    )
    health = read_log_health(str(table))
    assert health.reader_features == ("zzz",)
    assert health.findings == ()  # the log is healthy; compatibility is protocol.py's verdict
    _rewrite_protocol(table, {"minReaderVersion": 4, "minWriterVersion": 7, "writerFeatures": []})
    assert read_log_health(str(table)).min_reader_version == 4


def test_multi_part_checkpoints(copy_table: Any) -> None:
    table = copy_table("simple_table_with_checkpoint")
    log = _log(table)
    classic = log / f"{10:020d}.checkpoint.parquet"
    rows = pq.read_table(classic)
    classic.unlink()
    (log / "_last_checkpoint").write_text('{"version": 10, "size": 13, "parts": 2}')
    half = rows.num_rows // 2
    pq.write_table(rows.slice(0, half), log / f"{10:020d}.checkpoint.{1:010d}.{2:010d}.parquet")
    pq.write_table(rows.slice(half), log / f"{10:020d}.checkpoint.{2:010d}.{2:010d}.parquet")
    complete = read_log_health(str(table))
    assert complete.checkpoint is not None
    assert complete.checkpoint.kind is CheckpointKind.MULTI_PART
    assert (complete.checkpoint.parts_expected, complete.checkpoint.parts_present) == (2, 2)
    assert complete.last_checkpoint.state is LastCheckpointState.OK
    assert complete.live_files == 11
    assert complete.findings == ()

    (log / f"{10:020d}.checkpoint.{2:010d}.{2:010d}.parquet").unlink()
    partial = read_log_health(str(table))
    assert partial.last_checkpoint_version is None  # readers ignore incomplete multi-part checkpoints
    assert partial.last_checkpoint.state is LastCheckpointState.STALE
    assert codes(partial) == {
        "incomplete_multipart_checkpoint": Severity.WARN,
        "stale_last_checkpoint": Severity.WARN,
    }
    assert partial.live_files == 11


def test_v2_checkpoint_with_missing_sidecar_falls_back(copy_table: Any) -> None:
    table = copy_table("checkpoint-v2-table")
    sidecar = next((_log(table) / "_sidecars").glob(f"{8:020d}.checkpoint.*.parquet"))
    sidecar.unlink()
    health = read_log_health(str(table))
    assert codes(health)["missing_sidecar"] is Severity.ERROR
    assert health.last_checkpoint_version == 6
    assert health.commits_since_checkpoint == 3
    assert health.min_reader_version == 3


def test_log_compaction_files_are_listed(copy_table: Any) -> None:
    table = copy_table("simple_table")
    name = f"{1:020d}.{3:020d}.compacted.json"
    (_log(table) / name).write_text('{"add":{"path":"x","partitionValues":{},"size":1}}\n')
    health = read_log_health(str(table))
    assert health.compaction_files == (name,)
    assert codes(health) == {"log_compaction_present": Severity.INFO}


def test_no_protocol_or_metadata(copy_table: Any) -> None:
    table = copy_table("simple_table")
    commit = _log(table) / f"{0:020d}.json"
    lines = [
        line
        for line in commit.read_text().splitlines()
        if not line.startswith(('{"protocol"', '{"metaData"'))
    ]
    commit.write_text("\n".join(lines) + "\n")
    found = codes(read_log_health(str(table)))
    assert found["missing_protocol"] is Severity.ERROR
    assert found["missing_metadata"] is Severity.ERROR


def test_unreachable_object_store_is_a_finding() -> None:
    health = read_log_health(
        "s3://bucket/table",
        {
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
            "AWS_REGION": "us-east-1",
            "max_retries": "0",
        },
    )
    found = codes(health)
    assert found["log_not_readable_directly"] is Severity.WARN
    assert found["log_listing_failed"] is Severity.ERROR
    assert health.source is LogSource.NONE


@pytest.mark.parametrize(
    ("endpoint", "allow_http", "scheme", "override"),
    [
        ("http://127.0.0.1:9000", "false", "http", "127.0.0.1:9000"),
        ("https://s3.example.com/", "true", "https", "s3.example.com"),
        # A bare host:port: urlsplit would read "minio" as its scheme.
        ("minio:9000", "true", "http", "minio:9000"),
        ("minio:9000", "false", "https", "minio:9000"),
    ],
)
def test_s3_endpoint_scheme(endpoint: str, allow_http: str, scheme: str, override: str) -> None:
    options = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": allow_http, "AWS_REGION": "us-east-1"}
    fs, root = open_filesystem("s3://bucket/table", options)
    assert root == "bucket/table"
    rebuilt = fs.__reduce__()[1][0]  # what pickling rebuilds the filesystem from
    assert (rebuilt["scheme"], rebuilt["endpoint_override"]) == (scheme, override)


def test_s3_endpoint_of_another_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="neither http:// nor https://"):
        open_filesystem("s3://bucket/table", {"AWS_ENDPOINT_URL": "ftp://host", "AWS_ALLOW_HTTP": "true"})


# ----------------------------------------------------------------------------------------------------
# Fuzzing: random bytes and mutated real logs never make the reader raise


def _check(health: LogHealth) -> None:
    assert isinstance(health, LogHealth)
    for finding in health.findings:
        assert isinstance(finding.code, LogFindingCode)
        assert isinstance(finding.severity, Severity)
    json.dumps(health.to_row(), default=str)


_FUZZ_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_FUZZ_SETTINGS
@given(
    target=st.sampled_from(["commit", "last_checkpoint", "checkpoint", "sidecar_commit"]),
    data=st.binary(max_size=600),
)
def test_random_bytes_never_raise(delta_corpus: Path, target: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "t"
        shutil.copytree(delta_corpus / "simple_table_with_checkpoint" / "_delta_log", table / "_delta_log")
        log = table / "_delta_log"
        path = {
            "commit": log / f"{11:020d}.json",
            "last_checkpoint": log / "_last_checkpoint",
            "checkpoint": log / f"{10:020d}.checkpoint.parquet",
            "sidecar_commit": log / f"{5:020d}.json",
        }[target]
        path.chmod(0o644) if path.exists() else None
        path.write_bytes(data)
        _check(read_log_health(str(table)))


_MUTABLE = (
    "simple_table",
    "checkpoint-v2-table",
    "table-with-dv-small",
    "table_failed_last_checkpoint_update",
)


@_FUZZ_SETTINGS
@given(
    name=st.sampled_from(_MUTABLE),
    pick=st.integers(min_value=0, max_value=1_000),
    mutation=st.sampled_from(["truncate", "flip", "drop_line", "duplicate_line", "delete_file", "swap_json"]),
    position=st.floats(min_value=0.0, max_value=1.0),
    byte=st.integers(min_value=0, max_value=255),
)
def test_mutated_real_logs_never_raise(
    delta_corpus: Path, *, name: str, pick: int, mutation: str, position: float, byte: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / name
        shutil.copytree(delta_corpus / name / "_delta_log", table / "_delta_log")
        files = sorted(p for p in (table / "_delta_log").rglob("*") if p.is_file())
        victim = files[pick % len(files)]
        victim.chmod(0o644)
        content = victim.read_bytes()
        at = int(position * len(content))
        if mutation == "truncate":
            victim.write_bytes(content[:at])
        elif mutation == "flip" and content:
            at = min(at, len(content) - 1)
            victim.write_bytes(content[:at] + bytes([byte]) + content[at + 1 :])
        elif mutation in {"drop_line", "duplicate_line"}:
            lines = content.split(b"\n")
            index = min(int(position * len(lines)), len(lines) - 1)
            lines[index : index + 1] = [] if mutation == "drop_line" else [lines[index]] * 2
            victim.write_bytes(b"\n".join(lines))
        elif mutation == "delete_file":
            victim.unlink()
        elif mutation == "swap_json":
            victim.write_bytes(
                json.dumps({"protocol": {"minReaderVersion": byte}, "metaData": [byte]}).encode()
            )
        _check(read_log_health(str(table)))
