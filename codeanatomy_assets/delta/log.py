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
the listing and the checkpoint analysis in :mod:`codeanatomy_assets.delta.checkpoints`, the replayed snapshot
in :mod:`codeanatomy_assets.delta.snapshot_state`, the data file checks in
:mod:`codeanatomy_assets.delta.data_files`, URIs and filesystems in :mod:`codeanatomy_assets.delta.storage`.

>>> health = read_log_health("/no/such/table")
>>> health.delta_log_present, health.findings[0].code.value
(False, 'delta_log_missing')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

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
from codeanatomy_assets.delta.data_files import (
    DEFAULT_DATA_FILE_CHECK_LIMIT,
    OBJECT_STORE_DATA_FILE_CHECK_LIMIT,
    check_files,
    files_exist,
)
from codeanatomy_assets.delta.health import (
    CheckpointInfo,
    HealthBuilder,
    LogFindingCode,
    LogHealth,
    LogSource,
    effective_features,
)
from codeanatomy_assets.delta.snapshot_state import SnapshotState, configuration_facts, describe_state
from codeanatomy_assets.delta.storage import is_object_store_uri, open_filesystem
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.errors import exception_attributes, exception_text

if TYPE_CHECKING:
    from deltalake import DeltaTable, Metadata
    from deltalake.table import ProtocolVersions


@dataclass(frozen=True, slots=True)
class _Log:
    """The log being read: its filesystem, the table root in it, the ``_delta_log`` path and its listing."""

    fs: pafs.FileSystem
    root: str
    log_dir: str
    listing: Listing


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
    log = _open_log(builder, uri, storage_options)
    if isinstance(log, LogHealth):
        return log
    _analyse(builder, log, _check_limit(uri, data_file_check_limit))
    return builder.build(LogSource.DIRECT, present=True)


def _check_limit(uri: str, requested: int | None) -> int:
    """How many data files to check for existence: as requested, else by where the table lives."""
    if requested is not None:
        return requested
    return OBJECT_STORE_DATA_FILE_CHECK_LIMIT if is_object_store_uri(uri) else DEFAULT_DATA_FILE_CHECK_LIMIT


def _open_log(
    builder: HealthBuilder, uri: str, storage_options: Mapping[str, str] | None
) -> _Log | LogHealth:
    """The table's filesystem and log listing, or the whole health when they cannot be had."""
    try:
        fs, root = open_filesystem(uri, storage_options)
    except Exception as exc:  # noqa: BLE001 - any failure to build a filesystem is a finding, not a crash
        return _health_from_deltalake(builder, uri, storage_options, exc)
    log_dir = f"{root}/_delta_log"
    try:
        listing = list_log(fs, log_dir) if fs.get_file_info(log_dir).type == pafs.FileType.Directory else None
    except Exception as exc:  # noqa: BLE001 - listing failures (permissions, network) become findings
        return _listing_failed(builder, uri, storage_options, log_dir, exc)
    if listing is None:
        builder.find(
            LogFindingCode.DELTA_LOG_MISSING, Severity.ERROR, f"not a Delta table: no _delta_log at {uri}"
        )
        return builder.build(LogSource.DIRECT, present=False)
    return _Log(fs=fs, root=root, log_dir=log_dir, listing=listing)


def _listing_failed(
    builder: HealthBuilder, uri: str, storage_options: Mapping[str, str] | None, log_dir: str, exc: Exception
) -> LogHealth:
    """The health when ``log_dir`` cannot be listed: deltalake's for an object store, else none."""
    if is_object_store_uri(uri):
        return _health_from_deltalake(builder, uri, storage_options, exc)
    builder.find_exception(
        LogFindingCode.LOG_LISTING_FAILED, Severity.ERROR, f"could not list {log_dir}", exc
    )
    return builder.build(LogSource.NONE, present=False)


# ----------------------------------------------------------------------------------------------------
# Falling back on deltalake


def _health_from_deltalake(
    builder: HealthBuilder, uri: str, storage_options: Mapping[str, str] | None, cause: BaseException
) -> LogHealth:
    """What deltalake can tell (protocol, version, metadata) when the log cannot be read directly."""
    builder.find(
        LogFindingCode.LOG_NOT_READABLE_DIRECTLY,
        Severity.WARN,
        f"log not readable directly ({exception_text(cause)}); protocol and version taken from deltalake",
        **exception_attributes(cause),
    )
    opened = _open_with_deltalake(builder, uri, storage_options)
    if opened is None:
        return builder.build(LogSource.NONE, present=False)
    builder.values.update(_deltalake_facts(*opened))
    builder.find(
        LogFindingCode.DATA_FILES_NOT_CHECKED,
        Severity.INFO,
        "data files were not checked (the log was not read directly)",
    )
    return builder.build(LogSource.DELTALAKE, present=True)


def _open_with_deltalake(
    builder: HealthBuilder, uri: str, storage_options: Mapping[str, str] | None
) -> tuple[DeltaTable, ProtocolVersions, Metadata] | None:
    """The table, its protocol and its metadata as deltalake reads them (``None``, reported, if it cannot)."""
    try:
        from deltalake import DeltaTable

        table = DeltaTable(uri, storage_options=dict(storage_options or {}))
        return table, table.protocol(), table.metadata()
    except Exception as exc:  # noqa: BLE001 - deltalake failing too is the diagnosis
        builder.find_exception(
            LogFindingCode.LOG_LISTING_FAILED,
            Severity.ERROR,
            "deltalake could not open the table either",
            exc,
        )
        return None


def _deltalake_facts(table: DeltaTable, proto: ProtocolVersions, meta: Metadata) -> dict[str, Any]:
    """The version, protocol and metadata values of :class:`LogHealth`, as deltalake reports them."""
    readers, writers = effective_features(
        proto.min_reader_version, proto.min_writer_version, proto.reader_features, proto.writer_features
    )
    return {
        "latest_version": table.version(),
        "protocol": _raw_protocol(proto),
        "metadata_present": True,
        "table_id": meta.id,
        "partition_columns": tuple(meta.partition_columns),
        "min_reader_version": proto.min_reader_version,
        "min_writer_version": proto.min_writer_version,
        "reader_features": readers,
        "writer_features": writers,
        **configuration_facts(dict(meta.configuration or {})),
    }


def _raw_protocol(proto: ProtocolVersions) -> dict[str, Any]:
    """deltalake's protocol as the log's ``protocol`` action."""
    raw: dict[str, Any] = {
        "minReaderVersion": proto.min_reader_version,
        "minWriterVersion": proto.min_writer_version,
    }
    if proto.reader_features is not None:
        raw["readerFeatures"] = list(proto.reader_features)
    if proto.writer_features is not None:
        raw["writerFeatures"] = list(proto.writer_features)
    return raw


# ----------------------------------------------------------------------------------------------------
# Replaying the log


def _analyse(builder: HealthBuilder, log: _Log, limit: int) -> None:
    """Record the listing, find the latest version, and replay the snapshot up to it."""
    _report_listing(builder, log.listing)
    candidates = checkpoint_candidates(builder, log.listing)
    latest = max([*log.listing.commits, *(c.version for c in candidates if c.complete)], default=None)
    builder.values["latest_version"] = latest
    if latest is None:
        builder.find(
            LogFindingCode.NO_COMMITS,
            Severity.ERROR,
            "the _delta_log holds no commit and no complete checkpoint",
        )
    state = SnapshotState()
    used = _use_checkpoint(builder, log, candidates, latest, state)
    if latest is not None:
        _replay(builder, log, state, used, latest=latest, limit=limit)


def _report_listing(builder: HealthBuilder, listing: Listing) -> None:
    """Findings about files in the log that no snapshot needs; the compaction and commit counts."""
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
    builder.values.update(compaction_files=tuple(listing.compactions), commit_count=len(listing.commits))


def _replay(
    builder: HealthBuilder,
    log: _Log,
    state: SnapshotState,
    used: CheckpointInfo | None,
    *,
    latest: int,
    limit: int,
) -> None:
    """Replay the commits after checkpoint ``used`` up to ``latest``; describe the snapshot and its files."""
    find_gaps(builder, log.listing, used, latest)
    start = used.version + 1 if used else 0
    after = sorted(v for v in log.listing.commits if start <= v <= latest)
    builder.values["commits_since_checkpoint"] = len(after)
    for version in after:
        _replay_commit(builder, log, version, state)
    describe_state(builder, state, used, len(after), latest)
    if state.metadata is not None or state.live:
        check_files(builder, log.fs, log.root, state.live, limit)


def _replay_commit(builder: HealthBuilder, log: _Log, version: int, state: SnapshotState) -> None:
    try:
        text = read_text(log.fs, f"{log.log_dir}/{log.listing.commits[version]}")
    except Exception as exc:  # noqa: BLE001 - unreadable commit file: a corrupt commit
        builder.find_exception(
            LogFindingCode.CORRUPT_COMMIT,
            Severity.ERROR,
            f"commit {version} is unreadable",
            exc,
            version=version,
        )
        return
    actions, errors = parse_commit(text)
    _report_bad_commit(builder, version, actions, errors)
    state.apply_all(actions)


def _report_bad_commit(
    builder: HealthBuilder, version: int, actions: list[dict[str, Any]], errors: list[tuple[int, str]]
) -> None:
    """Report a commit with unparsable lines (``errors``: line number, error) or without actions."""
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


# ----------------------------------------------------------------------------------------------------
# The checkpoint used


def _use_checkpoint(
    builder: HealthBuilder,
    log: _Log,
    candidates: list[CheckpointInfo],
    latest: int | None,
    state: SnapshotState,
) -> CheckpointInfo | None:
    """Apply the checkpoint to use to ``state`` (none without a latest version); check the
    ``_last_checkpoint`` hint against it."""
    used = None if latest is None else _load_checkpoint(builder, log, candidates, latest, state)
    hint = read_hint(
        builder, log.fs, log.log_dir, log.listing, has_checkpoints=bool(candidates), used=used, latest=latest
    )
    builder.values.update(checkpoint=used, last_checkpoint=hint)
    return used


def _load_checkpoint(
    builder: HealthBuilder, log: _Log, candidates: list[CheckpointInfo], latest: int, state: SnapshotState
) -> CheckpointInfo | None:
    """Apply the newest complete, readable checkpoint not past ``latest`` to ``state``; the one applied."""
    usable = (c for c in candidates if c.complete and c.version <= latest)
    for candidate in sorted(usable, key=candidate_order, reverse=True):
        loaded = _read_checkpoint(builder, log, candidate)
        if loaded is not None:
            used, actions = loaded
            state.apply_all(actions)
            return used
    return None


def _read_checkpoint(
    builder: HealthBuilder, log: _Log, candidate: CheckpointInfo
) -> tuple[CheckpointInfo, list[dict[str, Any]]] | None:
    """The checkpoint's facts and actions (its sidecars' included), or ``None`` (reported) when unusable."""
    try:
        actions = read_checkpoint_actions(log.fs, log.log_dir, candidate)
    except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is skipped and reported
        builder.find_exception(
            LogFindingCode.CORRUPT_CHECKPOINT,
            Severity.ERROR,
            f"checkpoint {candidate.version} ({candidate.kind.value}) unreadable",
            exc,
            version=candidate.version,
            files=list(candidate.files),
        )
        return None
    sidecars = sidecar_paths(actions)
    sidecar_actions = _read_sidecars(builder, log, candidate.version, sidecars)
    if sidecar_actions is None:
        return None
    used = replace(
        candidate, v2_spec=any("checkpointMetadata" in a for a in actions), sidecars=tuple(sidecars)
    )
    return used, [*actions, *sidecar_actions]


def _read_sidecars(
    builder: HealthBuilder, log: _Log, version: int, sidecars: list[str]
) -> list[dict[str, Any]] | None:
    """The actions of checkpoint ``version``'s sidecar files, or ``None`` (reported) when one is missing or
    unreadable."""
    locations = [sidecar_location(log.log_dir, s) for s in sidecars]
    if _missing_sidecars(builder, log, version, sidecars, locations):
        return None
    try:
        return [action for location in locations for action in read_parquet_actions(log.fs, location)]
    except Exception as exc:  # noqa: BLE001 - an unreadable sidecar makes the checkpoint unusable
        builder.find_exception(
            LogFindingCode.CORRUPT_CHECKPOINT,
            Severity.ERROR,
            f"a sidecar of checkpoint {version} is unreadable",
            exc,
            version=version,
        )
        return None


def _missing_sidecars(
    builder: HealthBuilder, log: _Log, version: int, sidecars: list[str], locations: list[str]
) -> bool:
    """Whether any of the ``sidecars`` (at ``locations``) is missing (reported)."""
    missing = [s for s, ok in zip(sidecars, files_exist(log.fs, locations), strict=True) if not ok]
    if missing:
        builder.find(
            LogFindingCode.MISSING_SIDECAR,
            Severity.ERROR,
            f"checkpoint {version} references {len(missing)} missing sidecar file(s)",
            version=version,
            sidecars_missing=missing,
        )
    return bool(missing)
