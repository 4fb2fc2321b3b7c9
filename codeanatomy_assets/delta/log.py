"""Reading ``_delta_log`` directly: log health, checkpoints, protocol, gaps.

This module does not use ``deltalake.DeltaTable`` to read the log: a table that ``DeltaTable`` refuses to
open (a stale ``_last_checkpoint``, an unknown reader feature, a truncated commit) is exactly the table that
needs a diagnosis. It follows the Delta protocol specification (``PROTOCOL.md`` of delta-io/delta):

- commits are ``<v:020>.json``; checkpoints are classic ``<v:020>.checkpoint.parquet``, multi-part
  ``<v:020>.checkpoint.<o:010>.<p:010>.parquet`` (ignored unless every part is present) or UUID-named v2
  ``<v:020>.checkpoint.<uuid>.{json,parquet}`` whose ``sidecar`` actions name files in
  ``_delta_log/_sidecars``;
- log compaction files are ``<x:020>.<y:020>.compacted.json``;
- ``_last_checkpoint`` is only a hint: the checkpoint used is the newest complete, readable one found by
  listing;
- legacy protocol versions imply features (reader 2: columnMapping; writer 2..6: appendOnly, invariants,
  checkConstraints, changeDataFeed, generatedColumns, columnMapping, identityColumns); versions 3 (reader) and
  7 (writer) list their features explicitly.

Every problem found becomes a :class:`~codeanatomy_assets.delta.health.LogFinding` (code, severity,
message); nothing here raises on a damaged log. The records live in :mod:`codeanatomy_assets.delta.health`,
the listing and the checkpoint analysis in :mod:`codeanatomy_assets.delta.checkpoints`, URIs and
filesystems in :mod:`codeanatomy_assets.delta.storage`.

>>> health = read_log_health("/no/such/table")
>>> health.delta_log_present, health.findings[0].code.value
(False, 'delta_log_missing')
"""

from __future__ import annotations

import json
import os
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pyarrow.fs as pafs

from codeanatomy_assets.delta.checkpoints import (
    Listing,
    candidate_order,
    checkpoint_candidates,
    find_gaps,
    list_log,
    parse_commit,
    read_checkpoint_actions,
    read_hint,
    read_parquet_actions,
    read_text,
    sidecar_location,
    sidecar_paths,
)
from codeanatomy_assets.delta.health import (
    DEFAULT_CHECKPOINT_INTERVAL,
    CheckpointInfo,
    HealthBuilder,
    LogFindingCode,
    LogHealth,
    LogSource,
    effective_features,
)
from codeanatomy_assets.delta.storage import is_object_store_uri, open_filesystem, truthy
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.errors import exception_attributes, exception_text

DEFAULT_DATA_FILE_CHECK_LIMIT: Final = 10_000
"""How many live data files are checked for existence at most (a local ``stat`` each)."""
OBJECT_STORE_DATA_FILE_CHECK_LIMIT: Final = 1_000
"""The cap for object stores, where each check is a request."""
_Z85: Final = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"


# ----------------------------------------------------------------------------------------------------
# Reading actions


@dataclass(slots=True)
class _State:
    """Accumulated snapshot state while replaying checkpoint + commits."""

    protocol: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    live: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)

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


def _dv_id(dv: object) -> str:
    if not isinstance(dv, dict):
        return ""
    offset = dv.get("offset")
    return f"{dv.get('storageType')}{dv.get('pathOrInlineDv')}" + (f"@{offset}" if offset is not None else "")


def _exists(fs: pafs.FileSystem, paths: list[str]) -> list[bool]:
    if not paths:
        return []
    return [info.type != pafs.FileType.NotFound for info in fs.get_file_info(paths)]


# ----------------------------------------------------------------------------------------------------
# The reader


def read_log_health(
    uri: str,
    storage_options: Mapping[str, str] | None = None,
    *,
    data_file_check_limit: int | None = None,
) -> LogHealth:
    """Read ``<uri>/_delta_log`` directly and return its :class:`LogHealth`.

    Never raises on a damaged or unreadable log: every problem is a finding. For object stores whose log
    cannot be read with pyarrow.fs, the protocol and version come from ``deltalake`` when it can open the
    table (``source=deltalake``) and a ``log_not_readable_directly`` finding says so.
    """
    builder = HealthBuilder(uri)
    object_store = is_object_store_uri(uri)
    try:
        fs, root = open_filesystem(uri, storage_options)
    except Exception as exc:  # noqa: BLE001 - any failure to build a filesystem is a finding, not a crash
        return _health_from_deltalake(builder, uri, storage_options, exc)
    log_dir = f"{root}/_delta_log"
    try:
        info = fs.get_file_info(log_dir)
        if info.type != pafs.FileType.Directory:
            builder.find(
                LogFindingCode.DELTA_LOG_MISSING,
                Severity.ERROR,
                f"not a Delta table: no _delta_log at {uri}",
            )
            return builder.build(LogSource.DIRECT, present=False)
        listing = list_log(fs, log_dir)
    except Exception as exc:  # noqa: BLE001 - listing failures (permissions, network) become findings
        if object_store:
            return _health_from_deltalake(builder, uri, storage_options, exc)
        builder.find(
            LogFindingCode.LOG_LISTING_FAILED,
            Severity.ERROR,
            f"could not list {log_dir}: {exception_text(exc)}",
            **exception_attributes(exc),
        )
        return builder.build(LogSource.NONE, present=False)
    limit = data_file_check_limit
    if limit is None:
        limit = OBJECT_STORE_DATA_FILE_CHECK_LIMIT if object_store else DEFAULT_DATA_FILE_CHECK_LIMIT
    _analyse(builder, fs, root=root, log_dir=log_dir, listing=listing, limit=limit)
    return builder.build(LogSource.DIRECT, present=True)


def _health_from_deltalake(
    builder: HealthBuilder, uri: str, storage_options: Mapping[str, str] | None, cause: BaseException
) -> LogHealth:
    builder.find(
        LogFindingCode.LOG_NOT_READABLE_DIRECTLY,
        Severity.WARN,
        f"log not readable directly ({exception_text(cause)}); protocol and version taken from deltalake",
        **exception_attributes(cause),
    )
    try:
        from deltalake import DeltaTable

        table = DeltaTable(uri, storage_options=dict(storage_options or {}))
        proto = table.protocol()
        meta = table.metadata()
    except Exception as exc:  # noqa: BLE001 - deltalake failing too is the diagnosis
        builder.find(
            LogFindingCode.LOG_LISTING_FAILED,
            Severity.ERROR,
            f"deltalake could not open the table either: {exception_text(exc)}",
            **exception_attributes(exc),
        )
        return builder.build(LogSource.NONE, present=False)
    readers, writers = effective_features(
        proto.min_reader_version, proto.min_writer_version, proto.reader_features, proto.writer_features
    )
    configuration = dict(meta.configuration or {})
    raw_protocol: dict[str, Any] = {
        "minReaderVersion": proto.min_reader_version,
        "minWriterVersion": proto.min_writer_version,
    }
    if proto.reader_features is not None:
        raw_protocol["readerFeatures"] = list(proto.reader_features)
    if proto.writer_features is not None:
        raw_protocol["writerFeatures"] = list(proto.writer_features)
    builder.values.update(
        latest_version=table.version(),
        protocol=raw_protocol,
        metadata_present=True,
        table_id=meta.id,
        partition_columns=tuple(meta.partition_columns),
        configuration=configuration,
        min_reader_version=proto.min_reader_version,
        min_writer_version=proto.min_writer_version,
        reader_features=readers,
        writer_features=writers,
        column_mapping_mode=(configuration.get("delta.columnMapping.mode") or "none").lower(),
        deletion_vectors_enabled=truthy(configuration.get("delta.enableDeletionVectors")),
    )
    builder.find(
        LogFindingCode.DATA_FILES_NOT_CHECKED,
        Severity.INFO,
        "data files were not checked (the log was not read directly)",
    )
    return builder.build(LogSource.DELTALAKE, present=True)


def _analyse(
    builder: HealthBuilder, fs: pafs.FileSystem, *, root: str, log_dir: str, listing: Listing, limit: int
) -> None:
    for name in listing.unrecognized:
        builder.find(
            LogFindingCode.UNRECOGNIZED_LOG_FILE,
            Severity.INFO,
            f"unrecognized file in _delta_log: {name}",
            file=name,
        )
    if listing.compactions:
        builder.find(
            LogFindingCode.LOG_COMPACTION_PRESENT,
            Severity.INFO,
            f"{len(listing.compactions)} log compaction file(s) present (optional for readers)",
            files=list(listing.compactions),
        )
    builder.values["compaction_files"] = tuple(listing.compactions)
    builder.values["commit_count"] = len(listing.commits)

    candidates = checkpoint_candidates(builder, fs, log_dir, listing)
    complete_versions = {c.version for c in candidates if c.complete}
    latest = max([*listing.commits, *complete_versions], default=None)
    builder.values["latest_version"] = latest
    if latest is None:
        builder.find(
            LogFindingCode.NO_COMMITS,
            Severity.ERROR,
            "the _delta_log holds no commit and no complete checkpoint",
        )
        builder.values["last_checkpoint"] = read_hint(
            builder, fs, log_dir=log_dir, listing=listing, candidates=candidates, used=None, latest=None
        )
        return

    state = _State()
    used: CheckpointInfo | None = None
    for candidate in sorted(
        (c for c in candidates if c.complete and c.version <= latest), key=candidate_order, reverse=True
    ):
        try:
            actions = read_checkpoint_actions(fs, log_dir, candidate)
        except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is skipped and reported
            builder.find(
                LogFindingCode.CORRUPT_CHECKPOINT,
                Severity.ERROR,
                f"checkpoint {candidate.version} ({candidate.kind.value}) unreadable: {exception_text(exc)}",
                version=candidate.version,
                files=list(candidate.files),
                **exception_attributes(exc),
            )
            continue
        is_v2 = any("checkpointMetadata" in a for a in actions)
        sidecars = sidecar_paths(actions)
        missing_sidecars = tuple(
            s
            for s, ok in zip(
                sidecars, _exists(fs, [sidecar_location(log_dir, s) for s in sidecars]), strict=True
            )
            if not ok
        )
        if missing_sidecars:
            builder.find(
                LogFindingCode.MISSING_SIDECAR,
                Severity.ERROR,
                f"checkpoint {candidate.version} references {len(missing_sidecars)} missing sidecar file(s)",
                version=candidate.version,
                sidecars_missing=list(missing_sidecars),
            )
            continue
        sidecar_actions: list[dict[str, Any]] = []
        try:
            for sidecar in sidecars:
                sidecar_actions.extend(read_parquet_actions(fs, sidecar_location(log_dir, sidecar)))
        except Exception as exc:  # noqa: BLE001 - an unreadable sidecar makes the checkpoint unusable
            builder.find(
                LogFindingCode.CORRUPT_CHECKPOINT,
                Severity.ERROR,
                f"a sidecar of checkpoint {candidate.version} is unreadable: {exception_text(exc)}",
                version=candidate.version,
                **exception_attributes(exc),
            )
            continue
        for action in [*actions, *sidecar_actions]:
            state.apply(action)
        used = CheckpointInfo(
            version=candidate.version,
            kind=candidate.kind,
            files=candidate.files,
            parts_expected=candidate.parts_expected,
            parts_present=candidate.parts_present,
            v2_spec=is_v2,
            sidecars=tuple(sidecars),
        )
        break
    builder.values["checkpoint"] = used
    builder.values["last_checkpoint"] = read_hint(
        builder, fs, log_dir=log_dir, listing=listing, candidates=candidates, used=used, latest=latest
    )

    start = used.version + 1 if used else 0
    find_gaps(builder, listing, used, latest)
    after = sorted(v for v in listing.commits if start <= v <= latest)
    builder.values["commits_since_checkpoint"] = len(after)
    for version in after:
        _replay_commit(
            builder, fs, log_dir=log_dir, name=listing.commits[version], version=version, state=state
        )
    _describe_state(builder, state, used, len(after), latest)
    if state.metadata is not None or state.live:
        _check_files(builder, fs, root, state, limit)


def _replay_commit(
    builder: HealthBuilder, fs: pafs.FileSystem, *, log_dir: str, name: str, version: int, state: _State
) -> None:
    try:
        text = read_text(fs, f"{log_dir}/{name}")
    except Exception as exc:  # noqa: BLE001 - unreadable commit file: a corrupt commit
        builder.find(
            LogFindingCode.CORRUPT_COMMIT,
            Severity.ERROR,
            f"commit {version} is unreadable: {exception_text(exc)}",
            version=version,
            **exception_attributes(exc),
        )
        return
    actions, errors = parse_commit(text)
    if errors:
        line, error = errors[0]
        builder.find(
            LogFindingCode.CORRUPT_COMMIT,
            Severity.ERROR,
            f"commit {version} has {len(errors)} unparsable line(s), first at line {line}: {error}",
            version=version,
            line=line,
            bad_lines=len(errors),
        )
    elif not actions:
        builder.find(
            LogFindingCode.EMPTY_COMMIT, Severity.ERROR, f"commit {version} holds no action", version=version
        )
    for action in actions:
        state.apply(action)


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_names(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return None


def _describe_state(
    builder: HealthBuilder, state: _State, used: CheckpointInfo | None, since: int, latest: int
) -> None:
    protocol = state.protocol
    if protocol is None:
        builder.find(LogFindingCode.MISSING_PROTOCOL, Severity.ERROR, "no protocol action in the log")
    else:
        builder.values["protocol"] = protocol
        reader = _as_int(protocol.get("minReaderVersion"))
        writer = _as_int(protocol.get("minWriterVersion"))
        raw_readers = _as_names(protocol.get("readerFeatures"))
        raw_writers = _as_names(protocol.get("writerFeatures"))
        if reader is None or writer is None:
            builder.find(
                LogFindingCode.INVALID_PROTOCOL_ACTION,
                Severity.ERROR,
                "the protocol action lacks integer minReaderVersion/minWriterVersion",
                protocol=protocol,
            )
        readers, writers = effective_features(reader, writer, raw_readers, raw_writers)
        builder.values.update(
            min_reader_version=reader,
            min_writer_version=writer,
            reader_features=readers,
            writer_features=writers,
        )
    metadata = state.metadata
    if metadata is None:
        builder.find(LogFindingCode.MISSING_METADATA, Severity.ERROR, "no metaData action in the log")
    else:
        configuration = {
            str(k): str(v) for k, v in (metadata.get("configuration") or {}).items() if v is not None
        }
        builder.values.update(
            metadata_present=True,
            table_id=metadata.get("id") if isinstance(metadata.get("id"), str) else None,
            partition_columns=tuple(_as_names(metadata.get("partitionColumns")) or ()),
            schema_fields=_schema_fields(metadata.get("schemaString")),
            configuration=configuration,
            column_mapping_mode=(configuration.get("delta.columnMapping.mode") or "none").lower(),
            deletion_vectors_enabled=truthy(configuration.get("delta.enableDeletionVectors")),
        )
        interval = DEFAULT_CHECKPOINT_INTERVAL
        raw_interval = configuration.get("delta.checkpointInterval")
        if raw_interval is not None:
            try:
                interval = int(raw_interval)
                if interval <= 0:
                    raise ValueError(raw_interval)
            except ValueError:
                interval = DEFAULT_CHECKPOINT_INTERVAL
                builder.find(
                    LogFindingCode.INVALID_TABLE_PROPERTY,
                    Severity.WARN,
                    f"delta.checkpointInterval={raw_interval!r} is not a positive integer; using 100",
                    property="delta.checkpointInterval",
                )
        builder.values["checkpoint_interval"] = interval
        pending = since if used else latest + 1
        if pending > interval:
            where = f"since checkpoint {used.version}" if used else "and no checkpoint"
            builder.find(
                LogFindingCode.CHECKPOINT_OVERDUE,
                Severity.WARN,
                f"{pending} commits to replay {where}; the checkpoint interval is {interval}",
                commits=pending,
                checkpoint_interval=interval,
            )


def _schema_fields(schema_string: object) -> tuple[str, ...]:
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


def _file_location(root: str, path: str) -> str | None:
    """Where an add action's URI-encoded path lives in the table's filesystem (``None``: elsewhere)."""
    if "://" in path:
        split = urllib.parse.urlsplit(path)
        if split.scheme == "file":
            return urllib.parse.unquote(split.path)
        return None
    return f"{root}/{urllib.parse.unquote(path)}"


def _z85_decode(text: str) -> bytes:
    out = bytearray()
    for i in range(0, len(text), 5):
        value = 0
        for char in text[i : i + 5]:
            value = value * 85 + _Z85.index(char)
        out += value.to_bytes(4, "big")
    return bytes(out)


def deletion_vector_location(root: str, dv: Mapping[str, Any]) -> str | None:
    """The file holding an on-disk deletion vector (``None`` for inline ones or undecodable descriptors).

    >>> deletion_vector_location("/t", {"storageType": "u", "pathOrInlineDv": "vBn[lx{q8@P<9BNH/isA"})
    '/t/deletion_vector_61d16c75-6994-46b7-a15b-8b538852e50e.bin'
    """
    storage = dv.get("storageType")
    value = dv.get("pathOrInlineDv")
    if not isinstance(value, str):
        return None
    if storage == "p":
        return _file_location(root, value)
    if storage != "u" or len(value) < 20:
        return None
    try:
        dv_uuid = uuid.UUID(bytes=_z85_decode(value[-20:]))
    except ValueError:
        return None
    prefix = value[:-20]
    name = f"deletion_vector_{dv_uuid}.bin"
    return f"{root}/{prefix}/{name}" if prefix else f"{root}/{name}"


def _check_files(builder: HealthBuilder, fs: pafs.FileSystem, root: str, state: _State, limit: int) -> None:
    paths = sorted({path for path, _ in state.live})
    builder.values["live_files"] = len(paths)
    located = [(p, _file_location(root, p)) for p in paths]
    checkable = [(p, loc) for p, loc in located if loc is not None]
    if len(checkable) < len(located):
        builder.find(
            LogFindingCode.DATA_FILES_NOT_CHECKED,
            Severity.INFO,
            f"{len(located) - len(checkable)} data file(s) outside the table's filesystem were not checked",
        )
    if len(checkable) > limit:
        builder.find(
            LogFindingCode.DATA_FILE_CHECK_TRUNCATED,
            Severity.INFO,
            f"checked {limit} of {len(checkable)} live data files for existence",
            limit=limit,
            live_files=len(checkable),
        )
        checkable = checkable[:limit]
    try:
        exists = _exists(fs, [loc for _, loc in checkable])
    except Exception as exc:  # noqa: BLE001 - the existence check itself failing is reported, not raised
        builder.find(
            LogFindingCode.DATA_FILES_NOT_CHECKED,
            Severity.INFO,
            f"data files could not be checked: {exception_text(exc)}",
            **exception_attributes(exc),
        )
        return
    missing = [p for (p, _), ok in zip(checkable, exists, strict=True) if not ok]
    builder.values.update(
        data_files_checked=len(checkable),
        data_files_missing=len(missing),
        missing_data_file_examples=tuple(missing[:5]),
    )
    if missing:
        builder.find(
            LogFindingCode.MISSING_DATA_FILES,
            Severity.ERROR,
            f"{len(missing)} of {len(checkable)} checked live data file(s) are missing, e.g. {missing[0]}",
            missing=len(missing),
            checked=len(checkable),
            examples=missing[:5],
        )
    dv_locations = sorted(
        {
            loc
            for dv in state.live.values()
            if isinstance(dv, dict) and (loc := deletion_vector_location(root, dv)) is not None
        }
    )[:limit]
    try:
        dv_exists = _exists(fs, dv_locations)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        builder.find(
            LogFindingCode.DATA_FILES_NOT_CHECKED,
            Severity.INFO,
            f"deletion vector files could not be checked: {exception_text(exc)}",
        )
        return
    dv_missing = [loc for loc, ok in zip(dv_locations, dv_exists, strict=True) if not ok]
    builder.values["deletion_vector_files_missing"] = len(dv_missing)
    if dv_missing:
        builder.find(
            LogFindingCode.MISSING_DELETION_VECTOR_FILES,
            Severity.ERROR,
            f"{len(dv_missing)} deletion vector file(s) are missing, e.g. {os.path.basename(dv_missing[0])}",
            missing=len(dv_missing),
            examples=[os.path.basename(p) for p in dv_missing[:5]],
        )
