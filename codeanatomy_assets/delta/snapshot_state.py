"""The snapshot a log replay builds, and what it says about the table.

:class:`SnapshotState` applies checkpoint and commit actions in log order, keeping the latest ``protocol`` and
``metaData`` actions and the live files. :func:`describe_state` records the protocol versions and effective
features, the table's metadata and configuration, and whether a checkpoint is overdue, as values and
findings on the :class:`~codeanatomy_assets.delta.health.HealthBuilder`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from codeanatomy_assets.delta.health import (
    DEFAULT_CHECKPOINT_INTERVAL,
    CheckpointInfo,
    HealthBuilder,
    LogFindingCode,
    effective_features,
)
from codeanatomy_assets.delta.storage import truthy
from codeanatomy_assets.diagnostics.taxonomy import Severity

# ----------------------------------------------------------------------------------------------------
# Replaying actions


@dataclass(slots=True)
class SnapshotState:
    """Accumulated snapshot state while replaying checkpoint + commits."""

    protocol: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    live: dict[tuple[str, str], object] = field(default_factory=dict)
    """The live files by (path, deletion vector id), each with its deletion vector descriptor as found."""

    def apply(self, action: Mapping[str, Any]) -> None:
        if isinstance(action.get("protocol"), dict):
            self.protocol = action["protocol"]
        if isinstance(action.get("metaData"), dict):
            self.metadata = action["metaData"]
        add = action.get("add")
        if isinstance(add, dict) and isinstance(add.get("path"), str):
            self.live[(add["path"], _dv_id(add.get("deletionVector")))] = add.get("deletionVector")
        remove = action.get("remove")
        if isinstance(remove, dict) and isinstance(remove.get("path"), str):
            self.live.pop((remove["path"], _dv_id(remove.get("deletionVector"))), None)

    def apply_all(self, actions: Iterable[Mapping[str, Any]]) -> None:
        for action in actions:
            self.apply(action)


def _dv_id(dv: object) -> str:
    """The unique id of a deletion vector descriptor (``""`` for none)."""
    if not isinstance(dv, dict):
        return ""
    offset = dv.get("offset")
    return f"{dv.get('storageType')}{dv.get('pathOrInlineDv')}" + (f"@{offset}" if offset is not None else "")


# ----------------------------------------------------------------------------------------------------
# Describing the snapshot


def describe_state(
    builder: HealthBuilder, state: SnapshotState, used: CheckpointInfo | None, since: int, latest: int
) -> None:
    """Record what the protocol and metadata say (``since``: commits replayed after checkpoint ``used``)."""
    if state.protocol is None:
        builder.find(LogFindingCode.MISSING_PROTOCOL, Severity.ERROR, "no protocol action in the log")
    else:
        _describe_protocol(builder, state.protocol)
    if state.metadata is None:
        builder.find(LogFindingCode.MISSING_METADATA, Severity.ERROR, "no metaData action in the log")
    else:
        interval = _describe_metadata(builder, state.metadata)
        _check_overdue(builder, since if used else latest + 1, interval, used)


def configuration_facts(configuration: dict[str, str]) -> dict[str, Any]:
    """The :class:`~codeanatomy_assets.delta.health.LogHealth` values read from a table's configuration.

    >>> configuration_facts({"delta.columnMapping.mode": "Name"})["column_mapping_mode"]
    'name'
    """
    return {
        "configuration": configuration,
        "column_mapping_mode": (configuration.get("delta.columnMapping.mode") or "none").lower(),
        "deletion_vectors_enabled": truthy(configuration.get("delta.enableDeletionVectors")),
    }


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_names(value: object) -> list[str] | None:
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return None


def _describe_protocol(builder: HealthBuilder, protocol: dict[str, Any]) -> None:
    builder.values["protocol"] = protocol
    reader = _as_int(protocol.get("minReaderVersion"))
    writer = _as_int(protocol.get("minWriterVersion"))
    if reader is None or writer is None:
        builder.find(
            LogFindingCode.INVALID_PROTOCOL_ACTION,
            Severity.ERROR,
            "the protocol action lacks integer minReaderVersion/minWriterVersion",
            protocol=protocol,
        )
    readers, writers = effective_features(
        reader, writer, _as_names(protocol.get("readerFeatures")), _as_names(protocol.get("writerFeatures"))
    )
    builder.values.update(
        min_reader_version=reader, min_writer_version=writer, reader_features=readers, writer_features=writers
    )


def _describe_metadata(builder: HealthBuilder, metadata: dict[str, Any]) -> int:
    """Record the metadata's facts; the checkpoint interval in force."""
    configuration = {
        str(k): str(v) for k, v in (metadata.get("configuration") or {}).items() if v is not None
    }
    interval = _checkpoint_interval(builder, configuration)
    builder.values.update(
        metadata_present=True,
        table_id=metadata.get("id") if isinstance(metadata.get("id"), str) else None,
        partition_columns=tuple(_as_names(metadata.get("partitionColumns")) or ()),
        schema_fields=_schema_fields(metadata.get("schemaString")),
        checkpoint_interval=interval,
        **configuration_facts(configuration),
    )
    return interval


def _checkpoint_interval(builder: HealthBuilder, configuration: Mapping[str, str]) -> int:
    """``delta.checkpointInterval``, or the default (reported when the property is not a positive integer)."""
    raw = configuration.get("delta.checkpointInterval")
    if raw is None:
        return DEFAULT_CHECKPOINT_INTERVAL
    try:
        interval = int(raw)
    except ValueError:
        interval = 0
    if interval > 0:
        return interval
    builder.find(
        LogFindingCode.INVALID_TABLE_PROPERTY,
        Severity.WARN,
        f"delta.checkpointInterval={raw!r} is not a positive integer; using {DEFAULT_CHECKPOINT_INTERVAL}",
        property="delta.checkpointInterval",
    )
    return DEFAULT_CHECKPOINT_INTERVAL


def _check_overdue(builder: HealthBuilder, pending: int, interval: int, used: CheckpointInfo | None) -> None:
    """Report more ``pending`` commits to replay than the checkpoint interval."""
    if pending <= interval:
        return
    where = f"since checkpoint {used.version}" if used else "and no checkpoint"
    builder.find(
        LogFindingCode.CHECKPOINT_OVERDUE,
        Severity.WARN,
        f"{pending} commits to replay {where}; the checkpoint interval is {interval}",
        commits=pending,
        checkpoint_interval=interval,
    )


def _schema_fields(schema_string: object) -> tuple[str, ...]:
    """The top-level field names of a ``schemaString`` (none when it is not a JSON struct)."""
    if not isinstance(schema_string, str):
        return ()
    try:
        schema = json.loads(schema_string)
    except ValueError:
        return ()
    fields = schema.get("fields") if isinstance(schema, dict) else None
    if not isinstance(fields, list):
        return ()
    return tuple(f["name"] for f in fields if isinstance(f, dict) and isinstance(f.get("name"), str))
