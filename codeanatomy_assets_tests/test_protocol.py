"""Protocol compatibility rules per provider mode, and the measurements they stand on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datafusion
import deltalake
import deltalake.table
import pyarrow as pa
import pytest

from codeanatomy_assets.delta.log import read_log_health
from codeanatomy_assets.delta.protocol import (
    DELTA_ENGINE_UNSUPPORTED,
    PRUNED_PARQUET_READER_FEATURES,
    PYARROW_DATASET_READER_FEATURES,
    READ_MODES,
    Compatibility,
    TableProtocol,
    check_all,
    check_compatibility,
    invalid_protocol_reasons,
    snapshot_unsupported,
)
from codeanatomy_assets.delta.provider import ProviderMode
from codeanatomy_assets.delta.pruned import open_snapshot, register_files

PRUNED = ProviderMode.DELTA_PRUNED_PARQUET
PROVIDER = ProviderMode.DELTA_TABLE_PROVIDER
DATASET = ProviderMode.PYARROW_DATASET
STREAM = ProviderMode.DELTA_SCAN_STREAM


def proto(
    reader: int,
    writer: int = 7,
    features: tuple[str, ...] | None = None,
    mapping: str = "none",
) -> TableProtocol:
    """A protocol with explicit features at reader 3 / writer 7, legacy implication otherwise."""
    readers = features or ()
    if reader == 2:
        readers = ("columnMapping",)
    return TableProtocol(
        min_reader_version=reader,
        min_writer_version=writer,
        reader_features=tuple(sorted(readers)),
        writer_features=tuple(sorted(features or ())),
        explicit_reader_features=features if reader == 3 else None,
        explicit_writer_features=(features or ()) if writer == 7 else None,
        column_mapping_mode=mapping,
    )


def unsupported(protocol: TableProtocol) -> dict[ProviderMode, tuple[str, ...]]:
    return {mode: verdict.unsupported for mode, verdict in check_all(protocol).items()}


def test_plain_tables_are_readable_by_every_mode() -> None:
    assert all(c.compatible for c in check_all(proto(1, 2)).values())
    assert all(c.compatible for c in check_all(proto(3, 7, ("timestampNtz",))).values())


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        # deletionVectors: the pruned reader accepts the feature while no live file carries one (snapshot rule).
        (
            proto(3, 7, ("deletionVectors",)),
            {PRUNED: (), PROVIDER: (), DATASET: ("deletionVectors",), STREAM: ()},
        ),
        (proto(3, 7, ("v2Checkpoint",)), {PRUNED: (), PROVIDER: (), DATASET: ("v2Checkpoint",), STREAM: ()}),
        (
            proto(2, 5, mapping="name"),
            {
                PRUNED: ("columnMapping", "delta.columnMapping.mode=name"),
                PROVIDER: (),
                DATASET: ("columnMapping", "delta.columnMapping.mode=name"),
                STREAM: (),
            },
        ),
        (proto(2, 5), {PRUNED: ("columnMapping",), PROVIDER: (), DATASET: ("columnMapping",), STREAM: ()}),
        (
            proto(3, 7, ("columnMapping",), mapping="id"),
            {
                PRUNED: ("columnMapping", "delta.columnMapping.mode=id"),
                PROVIDER: (),
                DATASET: ("columnMapping", "delta.columnMapping.mode=id"),
                STREAM: (),
            },
        ),
        (
            proto(1, 2, mapping="name"),
            {
                PRUNED: ("delta.columnMapping.mode=name",),
                PROVIDER: (),
                DATASET: ("delta.columnMapping.mode=name",),
                STREAM: (),
            },
        ),
        (
            proto(3, 7, ("typeWidening",)),
            dict.fromkeys(READ_MODES, ("typeWidening",)),
        ),
        (
            proto(3, 7, ("vacuumProtocolCheck",)),
            {
                PRUNED: (),  # readers only acknowledge it (spec); deltalake lists such a table's files
                PROVIDER: ("vacuumProtocolCheck",),
                DATASET: ("vacuumProtocolCheck",),
                STREAM: ("vacuumProtocolCheck",),
            },
        ),
        (
            proto(3, 7, ("variantShredding-preview", "variantType")),
            {
                PRUNED: ("variantShredding-preview", "variantType"),
                PROVIDER: ("variantShredding-preview",),
                DATASET: ("variantShredding-preview",),
                STREAM: ("variantShredding-preview",),
            },
        ),
        (proto(3, 7, ("variantType",)), {PRUNED: ("variantType",), PROVIDER: (), DATASET: (), STREAM: ()}),
        # Writer-only features (generated and identity columns, row tracking, ...) do not change reading.
        (proto(1, 7, ("generatedColumns", "identityColumns", "rowTracking")), dict.fromkeys(READ_MODES, ())),
        (proto(3, 7, ("zzzUnknown",)), dict.fromkeys(READ_MODES, ("zzzUnknown",))),
        (proto(4, 7), dict.fromkeys(READ_MODES, ("minReaderVersion=4",))),
    ],
)
def test_rules(protocol: TableProtocol, expected: dict[ProviderMode, tuple[str, ...]]) -> None:
    assert unsupported(protocol) == expected


def test_invalid_protocol_actions_are_unsupported_everywhere() -> None:
    missing = TableProtocol(min_reader_version=3, min_writer_version=7, explicit_writer_features=())
    assert "invalid_protocol:readerFeatures_missing_at_reader_3" in invalid_protocol_reasons(missing)
    writer_only = proto(3, 7, ("rowTracking",))
    assert invalid_protocol_reasons(writer_only) == (
        "invalid_protocol:writer_only_feature_in_readerFeatures:rowTracking",
    )
    assert not any(c.compatible for c in check_all(writer_only).values())
    assert check_compatibility(None, PROVIDER).unsupported == ("protocol_unknown",)
    assert not check_compatibility(proto(1, 2), ProviderMode.NONE).compatible


def test_probe_error_makes_a_mode_incompatible() -> None:
    verdict = Compatibility(mode=PROVIDER, compatible=True)
    failed = verdict.with_probe_error("boom")
    assert (failed.compatible, failed.probe_error) == (False, "boom")
    assert failed.to_row() == {"compatible": False, "unsupported": [], "probe_error": "boom"}


def test_corpus_verdicts(delta_corpus: Path) -> None:
    def verdicts(name: str) -> dict[ProviderMode, tuple[str, ...]]:
        return unsupported(TableProtocol.from_health(read_log_health(str(delta_corpus / name))))

    assert verdicts("table_with_column_mapping")[DATASET] == (
        "columnMapping",
        "delta.columnMapping.mode=name",
    )
    assert verdicts("table_with_column_mapping")[PRUNED] == ("columnMapping", "delta.columnMapping.mode=name")
    assert verdicts("table-with-dv-small")[DATASET] == ("deletionVectors",)
    assert verdicts("table-with-dv-small")[PRUNED] == ()  # statically: the snapshot rule refuses it
    assert verdicts("checkpoint-v2-table")[DATASET] == ("v2Checkpoint",)
    assert verdicts("checkpoint-v2-table")[PRUNED] == ()
    assert verdicts("simple_table_features")[PROVIDER] == ("minReaderVersion=5", "blahabl")
    shredded = verdicts("spark-shredded-variant-preview-delta")
    assert shredded.pop(PRUNED) == ("variantShredding-preview", "variantType")
    assert set(shredded.values()) == {("variantShredding-preview",)}
    variant = verdicts("spark-variant-stable-feature-checkpoint")
    assert variant.pop(PRUNED) == ("variantType",)  # variant columns: not verified with the native reader
    assert set(variant.values()) == {()}


def test_snapshot_rules_apply_to_the_pruned_reader_only() -> None:
    assert snapshot_unsupported(PRUNED, no_object_store=False) == ()
    assert snapshot_unsupported(PRUNED, no_object_store=True, files_with_deletion_vectors=1) == (
        "object_store_location",
        "deletionVectors(in use: 1 live files)",
    )
    for mode in (PROVIDER, DATASET, STREAM):
        assert snapshot_unsupported(mode, no_object_store=True, files_with_deletion_vectors=1) == ()


# ----------------------------------------------------------------------------------------------------
# The measurements behind the rules (FACTS #5-#7): these fail when an upgrade changes them.


def test_pyarrow_dataset_features_mirror_deltalake() -> None:
    assert frozenset(deltalake.table.SUPPORTED_READER_FEATURES) == PYARROW_DATASET_READER_FEATURES
    assert deltalake.table.MAX_SUPPORTED_READER_VERSION == 3


def _table_with_protocol(delta_corpus: Path, tmp_path: Path, feature: str) -> Path:
    table = tmp_path / feature
    shutil.copytree(delta_corpus / "simple_table", table)
    commit = table / "_delta_log" / f"{0:020d}.json"
    commit.chmod(0o644)
    action = {
        "minReaderVersion": 3,
        "minWriterVersion": 7,
        "readerFeatures": [feature],
        "writerFeatures": [feature],
    }
    lines = [
        json.dumps({"protocol": action}) if "protocol" in json.loads(line) else line
        for line in commit.read_text().splitlines()
    ]
    commit.write_text("\n".join(lines) + "\n")
    return table


@pytest.mark.parametrize(
    "feature",
    [
        "columnMapping",
        "deletionVectors",
        "timestampNtz",
        "v2Checkpoint",
        "variantType",
        "typeWidening",
        "typeWidening-preview",
        "variantShredding-preview",
        "vacuumProtocolCheck",
    ],
)
def test_deltalake_engine_support_matches_rules(delta_corpus: Path, tmp_path: Path, feature: str) -> None:
    table = deltalake.DeltaTable(str(_table_with_protocol(delta_corpus, tmp_path, feature)))
    ctx = datafusion.SessionContext()
    provider_ok = stream_ok = True
    try:
        ctx.register_table("t", table)
        ctx.sql("SELECT * FROM t WHERE id IS NOT NULL").to_arrow_table()
    except Exception:  # noqa: BLE001 - the measurement: does the provider refuse the feature?
        provider_ok = False
    try:
        pa.table(pa.RecordBatchReader.from_stream(table.scan()))
    except Exception:  # noqa: BLE001 - the measurement: does the scan refuse the feature?
        stream_ok = False
    pruned_ok = True
    try:
        snapshot = open_snapshot(str(table.table_uri), version=None)
        register_files(ctx, "p", snapshot)
        ctx.sql("SELECT * FROM p WHERE id IS NOT NULL").to_arrow_table()
    except Exception:  # noqa: BLE001 - the measurement: can deltalake list the files the pruned reader reads?
        pruned_ok = False
    rules = check_all(proto(3, 7, (feature,)))
    assert provider_ok is rules[PROVIDER].compatible is (feature not in DELTA_ENGINE_UNSUPPORTED)
    assert stream_ok is rules[STREAM].compatible
    # The pruned reader never accepts what it cannot read; it refuses more than deltalake does where the
    # files cannot be read as they are (column mapping, narrower types, variants).
    assert not rules[PRUNED].compatible or pruned_ok
    assert rules[PRUNED].compatible is (feature in PRUNED_PARQUET_READER_FEATURES)


def test_deltalake_refuses_unknown_reader_feature_and_reader_4(delta_corpus: Path, tmp_path: Path) -> None:
    unknown = _table_with_protocol(delta_corpus, tmp_path, "zzzUnknown")
    with pytest.raises(deltalake.exceptions.DeltaError, match="not supported"):
        deltalake.DeltaTable(str(unknown))
    assert not any(c.compatible for c in check_all(proto(3, 7, ("zzzUnknown",))).values())
    reader4 = tmp_path / "reader4"
    shutil.copytree(unknown, reader4)
    commit = reader4 / "_delta_log" / f"{0:020d}.json"
    action = {"minReaderVersion": 4, "minWriterVersion": 7, "writerFeatures": []}
    lines = [
        json.dumps({"protocol": action}) if "protocol" in json.loads(line) else line
        for line in commit.read_text().splitlines()
    ]
    commit.write_text("\n".join(lines) + "\n")
    with pytest.raises(deltalake.exceptions.DeltaError):
        deltalake.DeltaTable(str(reader4))
