"""The protocol compatibility rules per provider mode.

A static rule set: given a table's effective protocol (versions, features, reading-relevant properties) it
says, for each :class:`~codeanatomy_assets.delta.provider.ProviderMode`, whether that reader returns correct
data. The rules come from the Delta protocol specification and from measurements of the installed stack
(deltalake 1.6.6, datafusion 55; "Known limits of the readers" in ``docs/architecture/scan_strategy.md``,
and this module's tests):

- every mode: reader version above 3, unknown reader features, and malformed protocol actions are
  unsupported;
- ``delta_table_provider`` and ``delta_scan_stream`` (the same delta-rs engine) reject ``typeWidening``,
  ``typeWidening-preview``, ``variantShredding(-preview)``, ``vacuumProtocolCheck`` and catalog-managed
  tables;
- ``pyarrow_dataset`` reads Parquet files as they are: no deletion vectors, no column mapping (reader
  version 2 or a ``delta.columnMapping.mode`` of ``name``/``id`` returns all-NULL columns), no v2
  checkpoints; it accepts only the reader features deltalake's ``to_pyarrow_dataset`` accepts;
- ``delta_pruned_parquet`` lists the snapshot's files with deltalake and reads them with DataFusion's
  Parquet reader as they are: no column mapping (the files hold physical names), no ``typeWidening`` (files
  hold the narrower types), no variant columns (shredded ones are not the value; plain ones not verified
  with the native reader), nothing deltalake cannot list; ``timestampNtz``, ``v2Checkpoint`` and
  ``vacuumProtocolCheck`` (readers only acknowledge it) are fine, and ``deletionVectors`` only while no
  live file of the pinned snapshot carries one (:func:`snapshot_unsupported`, checked at registration).
  Writer-only features (generated or identity columns, row tracking, domain metadata, clustering, ...)
  do not change how rows are read. It reads local tables, and object-store tables (s3/gs/az) through
  the object store registered with the session.

>>> p = TableProtocol(min_reader_version=2, min_writer_version=5, reader_features=("columnMapping",),
...                   column_mapping_mode="name")
>>> check_compatibility(p, ProviderMode.PYARROW_DATASET).unsupported
('columnMapping', 'delta.columnMapping.mode=name')
>>> check_compatibility(p, ProviderMode.DELTA_TABLE_PROVIDER).compatible
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from codeanatomy_assets.delta.health import LogHealth
from codeanatomy_assets.delta.provider import ProviderMode

MAX_READER_VERSION: Final = 3
"""The highest reader protocol version any mode understands."""

READER_WRITER_FEATURES: Final = frozenset(
    {
        "columnMapping",
        "deletionVectors",
        "timestampNtz",
        "v2Checkpoint",
        "vacuumProtocolCheck",
        "typeWidening",
        "typeWidening-preview",
        "variantType",
        "variantType-preview",
        "variantShredding",
        "variantShredding-preview",
        "catalogManaged",
        "catalogOwned-preview",
    }
)
"""Features the specification (and its preview names) lets appear in ``readerFeatures``."""

WRITER_ONLY_FEATURES: Final = frozenset(
    {
        "appendOnly",
        "invariants",
        "checkConstraints",
        "generatedColumns",
        "allowColumnDefaults",
        "changeDataFeed",
        "identityColumns",
        "rowTracking",
        "domainMetadata",
        "icebergCompatV1",
        "icebergCompatV2",
        "clustering",
        "inCommitTimestamp",
    }
)
"""Writer-only features: one listed in ``readerFeatures`` makes the protocol action invalid (delta-kernel)."""

DELTA_ENGINE_UNSUPPORTED: Final = frozenset(
    {
        "typeWidening",
        "typeWidening-preview",
        "variantShredding",
        "variantShredding-preview",
        "vacuumProtocolCheck",
        "catalogManaged",
        "catalogOwned-preview",
    }
)
"""Reader features deltalake 1.6.6 refuses (provider and ``DeltaTable.scan`` alike; measured)."""

PYARROW_DATASET_READER_FEATURES: Final = frozenset({"timestampNtz", "variantType", "variantType-preview"})
"""Reader features ``DeltaTable.to_pyarrow_dataset`` accepts (deltalake.table.SUPPORTED_READER_FEATURES)."""

PRUNED_PARQUET_READER_FEATURES: Final = frozenset(
    {"timestampNtz", "v2Checkpoint", "deletionVectors", "vacuumProtocolCheck"}
)
"""Reader features ``delta_pruned_parquet`` accepts: ``deletionVectors`` only while none is in use;
``vacuumProtocolCheck`` only asks readers to acknowledge it (spec), and deltalake lists and prunes such a
table's files although its provider refuses the table (measured)."""

PROTOCOL_UNKNOWN: Final = "protocol_unknown"
"""``unsupported`` token: the table's protocol could not be read (so no rule can be applied)."""

OBJECT_STORE_LOCATION: Final = "object_store_location"
"""``unsupported`` token: an object-store table whose store could not be registered with the session
(``delta_pruned_parquet`` reads its files by URL through that store)."""

_MAPPED_MODES: Final = frozenset({"name", "id"})


@dataclass(frozen=True, slots=True, kw_only=True)
class TableProtocol:
    """What the compatibility rules look at: the effective protocol and the properties that change reading."""

    min_reader_version: int | None
    min_writer_version: int | None = None
    reader_features: tuple[str, ...] = ()
    """Effective reader features (legacy-implied ones included)."""
    writer_features: tuple[str, ...] = ()
    explicit_reader_features: tuple[str, ...] | None = None
    """``readerFeatures`` as written in the protocol action (``None`` when absent)."""
    explicit_writer_features: tuple[str, ...] | None = None
    column_mapping_mode: str = "none"
    deletion_vectors_enabled: bool = False

    @classmethod
    def from_health(cls, health: LogHealth) -> TableProtocol:
        """The protocol reconstructed by :func:`codeanatomy_assets.delta.log.read_log_health`."""
        raw: Mapping[str, Any] = health.protocol or {}
        return cls(
            min_reader_version=health.min_reader_version,
            min_writer_version=health.min_writer_version,
            reader_features=health.reader_features,
            writer_features=health.writer_features,
            explicit_reader_features=_names(raw.get("readerFeatures")),
            explicit_writer_features=_names(raw.get("writerFeatures")),
            column_mapping_mode=health.column_mapping_mode,
            deletion_vectors_enabled=health.deletion_vectors_enabled,
        )

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready row."""
        return {
            "min_reader_version": self.min_reader_version,
            "min_writer_version": self.min_writer_version,
            "reader_features": list(self.reader_features),
            "writer_features": list(self.writer_features),
            "column_mapping_mode": self.column_mapping_mode,
            "deletion_vectors_enabled": self.deletion_vectors_enabled,
        }


def _names(value: object) -> tuple[str, ...] | None:
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if v is not None)
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Compatibility:
    """Whether one provider mode reads a table correctly.

    ``unsupported`` names what stands in the way: feature names as the protocol spells them,
    ``minReaderVersion=N``, ``delta.columnMapping.mode=name``, ``invalid_protocol:<why>`` or
    ``protocol_unknown``. ``probe_error`` is set by registration when a read probe of this mode failed (then
    ``compatible`` is false).
    """

    mode: ProviderMode
    compatible: bool
    unsupported: tuple[str, ...] = ()
    probe_error: str | None = None

    def with_probe_error(self, error: str | None) -> Compatibility:
        """This verdict after a read probe (an error makes the mode incompatible in practice)."""
        if error is None:
            return replace(self, probe_error=None)
        return replace(self, compatible=False, probe_error=error)

    def to_row(self) -> dict[str, Any]:
        """The JSON form used by the doctor and the ``delta_protocol_compatibility_v1`` payload."""
        return {
            "compatible": self.compatible,
            "unsupported": list(self.unsupported),
            "probe_error": self.probe_error,
        }


def invalid_protocol_reasons(protocol: TableProtocol) -> tuple[str, ...]:
    """Why a protocol action is malformed (empty when it is valid), per the spec and delta-kernel's checks."""
    reasons: list[str] = []
    reader, writer = protocol.min_reader_version, protocol.min_writer_version
    if reader is None:
        return ("invalid_protocol:minReaderVersion_missing",)
    if reader < 1:
        reasons.append(f"invalid_protocol:minReaderVersion={reader}")
    if reader == MAX_READER_VERSION:
        if protocol.explicit_reader_features is None:
            reasons.append("invalid_protocol:readerFeatures_missing_at_reader_3")
        if writer is not None and writer != 7:
            reasons.append(f"invalid_protocol:reader_3_requires_writer_7(found_{writer})")
    elif protocol.explicit_reader_features and reader <= MAX_READER_VERSION:
        reasons.append(f"invalid_protocol:readerFeatures_at_reader_{reader}")
    if writer == 7 and protocol.explicit_writer_features is None:
        reasons.append("invalid_protocol:writerFeatures_missing_at_writer_7")
    writer_only = sorted(set(protocol.explicit_reader_features or ()) & WRITER_ONLY_FEATURES)
    reasons.extend(f"invalid_protocol:writer_only_feature_in_readerFeatures:{name}" for name in writer_only)
    return tuple(reasons)


def _common_unsupported(protocol: TableProtocol) -> list[str]:
    unsupported: list[str] = []
    reader = protocol.min_reader_version
    if reader is not None and reader > MAX_READER_VERSION:
        unsupported.append(f"minReaderVersion={reader}")
    unsupported.extend(invalid_protocol_reasons(protocol))
    unknown = sorted(set(protocol.reader_features) - READER_WRITER_FEATURES - WRITER_ONLY_FEATURES)
    unsupported.extend(unknown)
    return unsupported


def _mode_unsupported(protocol: TableProtocol, mode: ProviderMode) -> list[str]:
    """What stands in the way of ``mode``'s own reader (beyond the rules of every mode)."""
    features = set(protocol.reader_features)
    if mode in (ProviderMode.DELTA_TABLE_PROVIDER, ProviderMode.DELTA_SCAN_STREAM):
        return sorted(features & DELTA_ENGINE_UNSUPPORTED)
    if mode not in (ProviderMode.PYARROW_DATASET, ProviderMode.DELTA_PRUNED_PARQUET):
        return []
    accepted = (
        PYARROW_DATASET_READER_FEATURES
        if mode is ProviderMode.PYARROW_DATASET
        else PRUNED_PARQUET_READER_FEATURES
    )
    unsupported = sorted((features & READER_WRITER_FEATURES) - accepted)
    if protocol.column_mapping_mode in _MAPPED_MODES:
        unsupported.append(f"delta.columnMapping.mode={protocol.column_mapping_mode}")
    return unsupported


def check_compatibility(protocol: TableProtocol | None, mode: ProviderMode) -> Compatibility:
    """The static verdict for one mode (no I/O)."""
    if mode in (ProviderMode.NONE, ProviderMode.OTHER):
        return Compatibility(mode=mode, compatible=False, unsupported=(f"mode:{mode.value}",))
    if protocol is None or protocol.min_reader_version is None:
        return Compatibility(mode=mode, compatible=False, unsupported=(PROTOCOL_UNKNOWN,))
    unsupported = [*_common_unsupported(protocol), *_mode_unsupported(protocol, mode)]
    unique = tuple(dict.fromkeys(unsupported))
    return Compatibility(mode=mode, compatible=not unique, unsupported=unique)


def snapshot_unsupported(
    mode: ProviderMode,
    *,
    no_object_store: bool,
    files_with_deletion_vectors: int = 0,
) -> tuple[str, ...]:
    """What stands in a mode's way in one snapshot, beyond its protocol (no I/O: the caller supplies facts).

    Only ``delta_pruned_parquet`` has such rules: it reads an object-store table only through the store
    registered with the session (``no_object_store``: that registration failed), and a live file carrying
    a deletion vector would return deleted rows.

    >>> mode = ProviderMode.DELTA_PRUNED_PARQUET
    >>> snapshot_unsupported(mode, no_object_store=True, files_with_deletion_vectors=2)
    ('object_store_location', 'deletionVectors(in use: 2 live files)')
    >>> snapshot_unsupported(ProviderMode.DELTA_TABLE_PROVIDER, no_object_store=True)
    ()
    """
    if mode is not ProviderMode.DELTA_PRUNED_PARQUET:
        return ()
    unsupported: list[str] = []
    if no_object_store:
        unsupported.append(OBJECT_STORE_LOCATION)
    if files_with_deletion_vectors:
        unsupported.append(f"deletionVectors(in use: {files_with_deletion_vectors} live files)")
    return tuple(unsupported)


READ_MODES: Final = (
    ProviderMode.DELTA_PRUNED_PARQUET,
    ProviderMode.DELTA_TABLE_PROVIDER,
    ProviderMode.PYARROW_DATASET,
    ProviderMode.DELTA_SCAN_STREAM,
)
"""The modes that can serve a table, in the default policy order (the pruned Parquet reader first: it is
the fastest where it is exact; the Delta table provider reads every protocol it supports, but gets no
filters)."""


def check_all(
    protocol: TableProtocol | None, modes: Iterable[ProviderMode] = READ_MODES
) -> dict[ProviderMode, Compatibility]:
    """The static verdict for every mode."""
    return {mode: check_compatibility(protocol, mode) for mode in modes}
