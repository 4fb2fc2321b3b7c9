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

Every problem found becomes a :class:`LogFinding` (code, severity, message); nothing here raises on a
damaged log.

>>> health = read_log_health("/no/such/table")
>>> health.delta_log_present, health.findings[0].code.value
(False, 'delta_log_missing')
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from codeanatomy_assets.delta.storage import is_object_store_uri, open_filesystem, truthy
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.errors import error_text

DEFAULT_CHECKPOINT_INTERVAL: Final = 100
"""``delta.checkpointInterval`` when the table does not set it."""
DEFAULT_DATA_FILE_CHECK_LIMIT: Final = 10_000
"""How many live data files are checked for existence at most (a local ``stat`` each)."""
OBJECT_STORE_DATA_FILE_CHECK_LIMIT: Final = 1_000
"""The cap for object stores, where each check is a request."""

_COMMIT_RE: Final = re.compile(r"^(\d{20})\.json$")
_CLASSIC_RE: Final = re.compile(r"^(\d{20})\.checkpoint\.parquet$")
_MULTI_PART_RE: Final = re.compile(r"^(\d{20})\.checkpoint\.(\d{10})\.(\d{10})\.parquet$")
_UUID_RE: Final = re.compile(
    r"^(\d{20})\.checkpoint\.([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"\.(json|parquet)$"
)
_COMPACTED_RE: Final = re.compile(r"^(\d{20})\.(\d{20})\.compacted\.json$")
_CRC_RE: Final = re.compile(r"^\d{20}\.crc$")
_CHECKPOINT_COLUMNS: Final = ("protocol", "metaData", "add", "remove", "checkpointMetadata", "sidecar")
_FILE_ACTION_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "add": ("path", "deletionVector"),
    "remove": ("path", "deletionVector"),
}
_Z85: Final = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

# Features implied by legacy protocol versions (PROTOCOL.md, "Reader/Writer Version Requirements").
_READER_IMPLIED: Final[Mapping[int, frozenset[str]]] = {
    1: frozenset(),
    2: frozenset({"columnMapping"}),
}
_WRITER_IMPLIED: Final[Mapping[int, frozenset[str]]] = {
    1: frozenset(),
    2: frozenset({"appendOnly", "invariants"}),
    3: frozenset({"appendOnly", "invariants", "checkConstraints"}),
    4: frozenset({"appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns"}),
    5: frozenset(
        {
            "appendOnly",
            "invariants",
            "checkConstraints",
            "changeDataFeed",
            "generatedColumns",
            "columnMapping",
        }
    ),
    6: frozenset(
        {
            "appendOnly",
            "invariants",
            "checkConstraints",
            "changeDataFeed",
            "generatedColumns",
            "columnMapping",
            "identityColumns",
        }
    ),
}


class LogSource(StrEnum):
    """Where the log facts came from."""

    DIRECT = "direct"
    """``_delta_log`` files read by this module."""
    DELTALAKE = "deltalake"
    """The log could not be read directly (an object store); protocol and version come from deltalake."""
    NONE = "none"
    """Nothing could be read."""


class LastCheckpointState(StrEnum):
    """What the ``_last_checkpoint`` hint file says, checked against the listing."""

    MISSING = "missing"
    OK = "ok"
    EMPTY = "empty"
    CORRUPT = "corrupt"
    """Not JSON, not an object, or without an integer ``version``."""
    STALE = "stale"
    """Points at a version whose checkpoint files are missing (deltalake then refuses to open the table)."""
    AHEAD_OF_LOG = "ahead_of_log"
    """Points past the newest version in the log."""
    BEHIND = "behind"
    """Points at an existing checkpoint older than the newest complete one (a failed hint update)."""


class CheckpointKind(StrEnum):
    """The checkpoint naming schemes of the protocol."""

    CLASSIC = "classic"
    MULTI_PART = "multi_part"
    V2_UUID = "v2_uuid"


class LogFindingCode(StrEnum):
    """Codes of the findings about a Delta log (the ``code`` of ``delta_log_finding_v1``)."""

    DELTA_LOG_MISSING = "delta_log_missing"
    LOG_NOT_READABLE_DIRECTLY = "log_not_readable_directly"
    LOG_LISTING_FAILED = "log_listing_failed"
    NO_COMMITS = "no_commits"
    VERSION_GAP = "version_gap"
    HISTORY_GAP = "history_gap"
    CORRUPT_COMMIT = "corrupt_commit"
    EMPTY_COMMIT = "empty_commit"
    MISSING_PROTOCOL = "missing_protocol"
    MISSING_METADATA = "missing_metadata"
    INVALID_PROTOCOL_ACTION = "invalid_protocol_action"
    LAST_CHECKPOINT_MISSING = "last_checkpoint_missing"
    LAST_CHECKPOINT_EMPTY = "last_checkpoint_empty"
    CORRUPT_LAST_CHECKPOINT = "corrupt_last_checkpoint"
    STALE_LAST_CHECKPOINT = "stale_last_checkpoint"
    LAST_CHECKPOINT_AHEAD_OF_LOG = "last_checkpoint_ahead_of_log"
    LAST_CHECKPOINT_BEHIND = "last_checkpoint_behind"
    INCOMPLETE_MULTIPART_CHECKPOINT = "incomplete_multipart_checkpoint"
    MISSING_SIDECAR = "missing_sidecar"
    CORRUPT_CHECKPOINT = "corrupt_checkpoint"
    CHECKPOINT_OVERDUE = "checkpoint_overdue"
    LOG_COMPACTION_PRESENT = "log_compaction_present"
    MISSING_DATA_FILES = "missing_data_files"
    MISSING_DELETION_VECTOR_FILES = "missing_deletion_vector_files"
    DATA_FILE_CHECK_TRUNCATED = "data_file_check_truncated"
    DATA_FILES_NOT_CHECKED = "data_files_not_checked"
    INVALID_TABLE_PROPERTY = "invalid_table_property"
    UNRECOGNIZED_LOG_FILE = "unrecognized_log_file"


@dataclass(frozen=True, slots=True, kw_only=True)
class LogFinding:
    """One problem (or notable fact) found in a Delta log."""

    code: LogFindingCode
    severity: Severity
    message: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready row."""
        return {
            "code": self.code.value,
            "severity": self.severity.value,
            "message": self.message,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LastCheckpointHint:
    """The parsed ``_last_checkpoint`` file and its state."""

    state: LastCheckpointState
    version: int | None = None
    parts: int | None = None
    v2_path: str | None = None
    fields: tuple[str, ...] = ()
    """Keys present in the file (extra keys are tolerated)."""
    error: str | None = None

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready row."""
        return {
            "state": self.state.value,
            "version": self.version,
            "parts": self.parts,
            "v2_path": self.v2_path,
            "fields": list(self.fields),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointInfo:
    """The checkpoint the log reader uses (the newest complete, readable one not past the latest version)."""

    version: int
    kind: CheckpointKind
    files: tuple[str, ...]
    parts_expected: int = 1
    parts_present: int = 1
    v2_spec: bool = False
    """Whether it holds a ``checkpointMetadata`` action (V2 spec, possibly classic-named)."""
    sidecars: tuple[str, ...] = ()
    sidecars_missing: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """All parts and sidecars present."""
        return self.parts_present == self.parts_expected and not self.sidecars_missing

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready row."""
        return {
            "version": self.version,
            "kind": self.kind.value,
            "files": list(self.files),
            "parts_expected": self.parts_expected,
            "parts_present": self.parts_present,
            "complete": self.complete,
            "v2_spec": self.v2_spec,
            "sidecars": list(self.sidecars),
            "sidecars_missing": list(self.sidecars_missing),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionGap:
    """Commit versions ``start..end`` (inclusive) absent from the log."""

    start: int
    end: int
    blocking: bool
    """True when the latest snapshot needs them (no checkpoint covers them)."""

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready row."""
        return {"start": self.start, "end": self.end, "blocking": self.blocking}


@dataclass(frozen=True, slots=True, kw_only=True)
class LogHealth:
    """Everything the log says about a table's readiness, read without deltalake."""

    uri: str
    source: LogSource
    delta_log_present: bool
    latest_version: int | None = None
    commit_count: int = 0
    last_checkpoint: LastCheckpointHint = field(
        default_factory=lambda: LastCheckpointHint(state=LastCheckpointState.MISSING)
    )
    checkpoint: CheckpointInfo | None = None
    commits_since_checkpoint: int | None = None
    version_gaps: tuple[VersionGap, ...] = ()
    compaction_files: tuple[str, ...] = ()
    protocol: Mapping[str, Any] | None = None
    """The raw latest ``protocol`` action."""
    metadata_present: bool = False
    table_id: str | None = None
    partition_columns: tuple[str, ...] = ()
    schema_fields: tuple[str, ...] = ()
    configuration: Mapping[str, str] = field(default_factory=dict)
    min_reader_version: int | None = None
    min_writer_version: int | None = None
    reader_features: tuple[str, ...] = ()
    """Effective reader features: explicit (reader 3) or implied by the legacy version, sorted."""
    writer_features: tuple[str, ...] = ()
    """Effective writer features: explicit (writer 7) or implied by the legacy version, sorted."""
    column_mapping_mode: str = "none"
    deletion_vectors_enabled: bool = False
    checkpoint_interval: int = DEFAULT_CHECKPOINT_INTERVAL
    live_files: int | None = None
    data_files_checked: int = 0
    data_files_missing: int = 0
    missing_data_file_examples: tuple[str, ...] = ()
    deletion_vector_files_missing: int = 0
    findings: tuple[LogFinding, ...] = ()

    @property
    def table_features(self) -> tuple[str, ...]:
        """Sorted union of the effective reader and writer features."""
        return tuple(sorted(set(self.reader_features) | set(self.writer_features)))

    @property
    def last_checkpoint_version(self) -> int | None:
        """The version of the checkpoint the reader uses (not the hint's)."""
        return self.checkpoint.version if self.checkpoint else None

    @property
    def unreadable_reason(self) -> str | None:
        """Why the log gave no protocol, in one line (its first error finding, e.g. ``not a Delta table: no
        _delta_log at URI``); ``None`` when it gave one. No provider mode can be chosen without it."""
        if self.min_reader_version is not None:
            return None
        errors = [f.message for f in self.findings if f.severity is Severity.ERROR]
        return errors[0] if errors else "the log holds no readable protocol action"

    @property
    def severity(self) -> Severity:
        """The highest severity among the findings (info when there are none)."""
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=Severity.INFO)

    def payload(self) -> dict[str, Any]:
        """Every field, JSON-ready (the payload of ``delta_log_health_v1``)."""
        return {
            "uri": self.uri,
            "source": self.source.value,
            "delta_log_present": self.delta_log_present,
            "latest_version": self.latest_version,
            "commit_count": self.commit_count,
            "last_checkpoint": self.last_checkpoint.to_row(),
            "last_checkpoint_state": self.last_checkpoint.state.value,
            "last_checkpoint_version": self.last_checkpoint_version,
            "checkpoint": self.checkpoint.to_row() if self.checkpoint else None,
            "commits_since_checkpoint": self.commits_since_checkpoint,
            "version_gaps": [g.to_row() for g in self.version_gaps],
            "compaction_files": list(self.compaction_files),
            "protocol": dict(self.protocol) if self.protocol is not None else None,
            "metadata_present": self.metadata_present,
            "table_id": self.table_id,
            "partition_columns": list(self.partition_columns),
            "schema_fields": list(self.schema_fields),
            "configuration": dict(self.configuration),
            "min_reader_version": self.min_reader_version,
            "min_writer_version": self.min_writer_version,
            "reader_features": list(self.reader_features),
            "writer_features": list(self.writer_features),
            "table_features": list(self.table_features),
            "column_mapping_mode": self.column_mapping_mode,
            "deletion_vectors_enabled": self.deletion_vectors_enabled,
            "checkpoint_interval": self.checkpoint_interval,
            "live_files": self.live_files,
            "data_files_checked": self.data_files_checked,
            "data_files_missing": self.data_files_missing,
            "missing_data_file_examples": list(self.missing_data_file_examples),
            "deletion_vector_files_missing": self.deletion_vector_files_missing,
            "findings": [f.to_row() for f in self.findings],
        }

    def to_row(self) -> dict[str, Any]:
        """Alias of :meth:`payload` (the one serializer)."""
        return self.payload()


def effective_features(
    min_reader_version: int | None,
    min_writer_version: int | None,
    reader_features: Iterable[str] | None,
    writer_features: Iterable[str] | None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Reader and writer features in force, with those implied by legacy versions filled in.

    >>> effective_features(2, 5, None, None)[0]
    ('columnMapping',)
    >>> effective_features(1, 4, None, None)[1]
    ('appendOnly', 'changeDataFeed', 'checkConstraints', 'generatedColumns', 'invariants')
    >>> effective_features(3, 7, ["deletionVectors"], ["deletionVectors"])
    (('deletionVectors',), ('deletionVectors',))
    """
    readers: set[str] = set()
    if min_reader_version is not None:
        if min_reader_version in _READER_IMPLIED:
            readers |= _READER_IMPLIED[min_reader_version]
        else:
            readers |= set(reader_features or ())
    writers: set[str] = set()
    if min_writer_version is not None:
        if min_writer_version in _WRITER_IMPLIED:
            writers |= _WRITER_IMPLIED[min_writer_version]
        else:
            writers |= set(writer_features or ())
    return tuple(sorted(readers)), tuple(sorted(writers))


def _exception_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {error_text(exc, 400)}"


# ----------------------------------------------------------------------------------------------------
# Listing


@dataclass(slots=True)
class _Listing:
    commits: dict[int, str] = field(default_factory=dict)
    classic: dict[int, str] = field(default_factory=dict)
    multi_part: dict[tuple[int, int], dict[int, str]] = field(default_factory=dict)
    uuid_named: dict[int, list[str]] = field(default_factory=dict)
    compactions: list[str] = field(default_factory=list)
    unrecognized: list[str] = field(default_factory=list)
    has_last_checkpoint: bool = False

    def checkpoint_versions(self) -> set[int]:
        return set(self.classic) | {v for v, _ in self.multi_part} | set(self.uuid_named)


def _list_log(fs: pafs.FileSystem, log_dir: str) -> _Listing:
    listing = _Listing()
    infos = fs.get_file_info(pafs.FileSelector(log_dir, recursive=False))
    for info in infos:
        name = info.base_name
        if info.type == pafs.FileType.Directory:
            continue
        if name == "_last_checkpoint":
            listing.has_last_checkpoint = True
        elif m := _COMMIT_RE.match(name):
            listing.commits[int(m.group(1))] = name
        elif m := _CLASSIC_RE.match(name):
            listing.classic[int(m.group(1))] = name
        elif m := _MULTI_PART_RE.match(name):
            key = (int(m.group(1)), int(m.group(3)))
            listing.multi_part.setdefault(key, {})[int(m.group(2))] = name
        elif m := _UUID_RE.match(name):
            listing.uuid_named.setdefault(int(m.group(1)), []).append(name)
        elif _COMPACTED_RE.match(name):
            listing.compactions.append(name)
        elif _CRC_RE.match(name) or name.startswith((".", "_")) or name.endswith((".crc", ".tmp")):
            continue
        else:
            listing.unrecognized.append(name)
    listing.compactions.sort()
    listing.unrecognized.sort()
    return listing


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


def _parse_commit(text: str) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """Actions of a commit and the (line number, error) of every line that is not a JSON object."""
    actions: list[dict[str, Any]] = []
    errors: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            errors.append((number, _exception_text(exc)))
            continue
        if isinstance(value, dict):
            actions.append(value)
        else:
            errors.append((number, f"line is a JSON {type(value).__name__}, not an action object"))
    return actions, errors


def _normalize(value: Any) -> Any:
    """Arrow ``to_pylist`` output → JSON-like values (maps arrive as lists of key/value tuples)."""
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(i, tuple) and len(i) == 2 for i in value):
            return {k: _normalize(v) for k, v in value}
        return [_normalize(v) for v in value]
    return value


def _read_parquet_actions(fs: pafs.FileSystem, path: str) -> list[dict[str, Any]]:
    schema_names = pq.read_schema(path, filesystem=fs).names
    columns = [c for c in _CHECKPOINT_COLUMNS if c in schema_names]
    table = pq.read_table(path, filesystem=fs, columns=columns)
    actions: list[dict[str, Any]] = []
    for column in columns:
        values = table.column(column)
        if column in _FILE_ACTION_FIELDS:
            values = _project_struct(values, _FILE_ACTION_FIELDS[column])
        for value in values.to_pylist():
            if value is not None:
                actions.append({column: _normalize(value)})
    return actions


def _project_struct(column: pa.ChunkedArray, names: tuple[str, ...]) -> pa.Array | pa.ChunkedArray:
    """Only the named fields of a struct column (file actions carry ``stats`` the reader never needs)."""
    array = column.combine_chunks()
    if not isinstance(array, pa.StructArray):
        return column
    kept = [n for n in names if array.type.get_field_index(n) >= 0]
    if not kept:
        return column
    return pa.StructArray.from_arrays([array.field(n) for n in kept], names=kept, mask=array.is_null())


def _read_text(fs: pafs.FileSystem, path: str) -> str:
    with fs.open_input_stream(path) as stream:
        return stream.read().decode("utf-8", errors="replace")


def _exists(fs: pafs.FileSystem, paths: list[str]) -> list[bool]:
    if not paths:
        return []
    return [info.type != pafs.FileType.NotFound for info in fs.get_file_info(paths)]


# ----------------------------------------------------------------------------------------------------
# The reader


class _Builder:
    """Collects the pieces of a :class:`LogHealth` (a small mutable helper, internal)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.findings: list[LogFinding] = []
        self.values: dict[str, Any] = {}

    def find(self, code: LogFindingCode, severity: Severity, message: str, **detail: Any) -> None:
        self.findings.append(LogFinding(code=code, severity=severity, message=message, detail=detail))

    def build(self, source: LogSource, present: bool) -> LogHealth:
        return LogHealth(
            uri=self.uri,
            source=source,
            delta_log_present=present,
            findings=tuple(self.findings),
            **self.values,
        )


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
    builder = _Builder(uri)
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
        listing = _list_log(fs, log_dir)
    except Exception as exc:  # noqa: BLE001 - listing failures (permissions, network) become findings
        if object_store:
            return _health_from_deltalake(builder, uri, storage_options, exc)
        builder.find(
            LogFindingCode.LOG_LISTING_FAILED,
            Severity.ERROR,
            f"could not list {log_dir}: {_exception_text(exc)}",
            **{"exception.type": type(exc).__name__, "exception.message": error_text(exc, 400)},
        )
        return builder.build(LogSource.NONE, present=False)
    limit = data_file_check_limit
    if limit is None:
        limit = OBJECT_STORE_DATA_FILE_CHECK_LIMIT if object_store else DEFAULT_DATA_FILE_CHECK_LIMIT
    _analyse(builder, fs, root=root, log_dir=log_dir, listing=listing, limit=limit)
    return builder.build(LogSource.DIRECT, present=True)


def _health_from_deltalake(
    builder: _Builder, uri: str, storage_options: Mapping[str, str] | None, cause: BaseException
) -> LogHealth:
    builder.find(
        LogFindingCode.LOG_NOT_READABLE_DIRECTLY,
        Severity.WARN,
        f"log not readable directly ({_exception_text(cause)}); protocol and version taken from deltalake",
        **{"exception.type": type(cause).__name__, "exception.message": str(cause)[:400]},
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
            f"deltalake could not open the table either: {_exception_text(exc)}",
            **{"exception.type": type(exc).__name__, "exception.message": error_text(exc, 400)},
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
    builder: _Builder, fs: pafs.FileSystem, *, root: str, log_dir: str, listing: _Listing, limit: int
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

    candidates = _checkpoint_candidates(builder, fs, log_dir, listing)
    complete_versions = {c.version for c in candidates if c.complete}
    latest = max([*listing.commits, *complete_versions], default=None)
    builder.values["latest_version"] = latest
    if latest is None:
        builder.find(
            LogFindingCode.NO_COMMITS,
            Severity.ERROR,
            "the _delta_log holds no commit and no complete checkpoint",
        )
        builder.values["last_checkpoint"] = _read_hint(
            builder, fs, log_dir=log_dir, listing=listing, candidates=candidates, used=None, latest=None
        )
        return

    state = _State()
    used: CheckpointInfo | None = None
    for candidate in sorted(
        (c for c in candidates if c.complete and c.version <= latest), key=_candidate_order, reverse=True
    ):
        try:
            actions = _read_checkpoint_actions(fs, log_dir, candidate)
        except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint is skipped and reported
            builder.find(
                LogFindingCode.CORRUPT_CHECKPOINT,
                Severity.ERROR,
                f"checkpoint {candidate.version} ({candidate.kind.value}) unreadable: {_exception_text(exc)}",
                version=candidate.version,
                files=list(candidate.files),
                **{"exception.type": type(exc).__name__, "exception.message": error_text(exc, 400)},
            )
            continue
        is_v2 = any("checkpointMetadata" in a for a in actions)
        sidecars = _sidecar_paths(actions)
        missing_sidecars = tuple(
            s
            for s, ok in zip(
                sidecars, _exists(fs, [_sidecar_location(log_dir, s) for s in sidecars]), strict=True
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
                sidecar_actions.extend(_read_parquet_actions(fs, _sidecar_location(log_dir, sidecar)))
        except Exception as exc:  # noqa: BLE001 - an unreadable sidecar makes the checkpoint unusable
            builder.find(
                LogFindingCode.CORRUPT_CHECKPOINT,
                Severity.ERROR,
                f"a sidecar of checkpoint {candidate.version} is unreadable: {_exception_text(exc)}",
                version=candidate.version,
                **{"exception.type": type(exc).__name__, "exception.message": error_text(exc, 400)},
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
    builder.values["last_checkpoint"] = _read_hint(
        builder, fs, log_dir=log_dir, listing=listing, candidates=candidates, used=used, latest=latest
    )

    start = used.version + 1 if used else 0
    _find_gaps(builder, listing, used, latest)
    after = sorted(v for v in listing.commits if start <= v <= latest)
    builder.values["commits_since_checkpoint"] = len(after)
    for version in after:
        _replay_commit(
            builder, fs, log_dir=log_dir, name=listing.commits[version], version=version, state=state
        )
    _describe_state(builder, state, used, len(after), latest)
    if state.metadata is not None or state.live:
        _check_files(builder, fs, root, state, limit)


def _candidate_order(candidate: CheckpointInfo) -> tuple[int, int]:
    # Newest first; for one version prefer v2 (UUID) over multi-part over classic, as delta-kernel does.
    rank = {CheckpointKind.CLASSIC: 0, CheckpointKind.MULTI_PART: 1, CheckpointKind.V2_UUID: 2}[
        candidate.kind
    ]
    return (candidate.version, rank)


def _checkpoint_candidates(
    builder: _Builder, fs: pafs.FileSystem, log_dir: str, listing: _Listing
) -> list[CheckpointInfo]:
    candidates = [
        CheckpointInfo(version=v, kind=CheckpointKind.CLASSIC, files=(name,))
        for v, name in listing.classic.items()
    ]
    for (version, total), parts in listing.multi_part.items():
        present = sorted(p for p in parts if 1 <= p <= total)
        info = CheckpointInfo(
            version=version,
            kind=CheckpointKind.MULTI_PART,
            files=tuple(parts[p] for p in present),
            parts_expected=total,
            parts_present=len(present),
        )
        if not info.complete:
            missing = sorted(set(range(1, total + 1)) - set(present))
            builder.find(
                LogFindingCode.INCOMPLETE_MULTIPART_CHECKPOINT,
                Severity.WARN,
                f"multi-part checkpoint {version} has {len(present)} of {total} parts; readers ignore it",
                version=version,
                parts_missing=missing,
            )
        candidates.append(info)
    for version, names in listing.uuid_named.items():
        candidates.extend(
            CheckpointInfo(version=version, kind=CheckpointKind.V2_UUID, files=(name,))
            for name in sorted(names)
        )
    return candidates


def _read_checkpoint_actions(
    fs: pafs.FileSystem, log_dir: str, candidate: CheckpointInfo
) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    for name in candidate.files:
        path = f"{log_dir}/{name}"
        if name.endswith(".json"):
            parsed, errors = _parse_commit(_read_text(fs, path))
            if errors:
                line, error = errors[0]
                raise ValueError(f"{name} line {line}: {error}")
            actions.extend(parsed)
        else:
            actions.extend(_read_parquet_actions(fs, path))
    if not any("protocol" in a for a in actions) and not any("metaData" in a for a in actions):
        raise ValueError("checkpoint holds neither protocol nor metaData")
    return actions


def _sidecar_paths(actions: Iterable[Mapping[str, Any]]) -> list[str]:
    return [
        a["sidecar"]["path"]
        for a in actions
        if isinstance(a.get("sidecar"), dict) and isinstance(a["sidecar"].get("path"), str)
    ]


def _sidecar_location(log_dir: str, path: str) -> str:
    # Sidecars live in _delta_log/_sidecars; the action stores a URI-encoded name (or, rarely, a full URI).
    if "://" in path:
        return urllib.parse.unquote(urllib.parse.urlsplit(path).path)
    return f"{log_dir}/_sidecars/{urllib.parse.unquote(path)}"


def _read_hint(
    builder: _Builder,
    fs: pafs.FileSystem,
    *,
    log_dir: str,
    listing: _Listing,
    candidates: list[CheckpointInfo],
    used: CheckpointInfo | None,
    latest: int | None,
) -> LastCheckpointHint:
    if not listing.has_last_checkpoint:
        if candidates:
            builder.find(
                LogFindingCode.LAST_CHECKPOINT_MISSING,
                Severity.INFO,
                "checkpoints exist but _last_checkpoint is absent (readers list the log instead)",
            )
        return LastCheckpointHint(state=LastCheckpointState.MISSING)
    try:
        text = _read_text(fs, f"{log_dir}/_last_checkpoint")
    except Exception as exc:  # noqa: BLE001 - unreadable hint file: reported as corrupt
        return _corrupt_hint(builder, _exception_text(exc))
    if not text.strip():
        builder.find(LogFindingCode.LAST_CHECKPOINT_EMPTY, Severity.WARN, "_last_checkpoint is empty")
        return LastCheckpointHint(state=LastCheckpointState.EMPTY)
    try:
        value = json.loads(text)
    except ValueError as exc:
        return _corrupt_hint(builder, f"not JSON: {_exception_text(exc)}")
    if not isinstance(value, dict):
        return _corrupt_hint(builder, f"a JSON {type(value).__name__}, not an object")
    version = value.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        return _corrupt_hint(builder, f"'version' is {version!r}, not a non-negative integer", fields=value)
    parts = value.get("parts")
    parts = parts if isinstance(parts, int) and not isinstance(parts, bool) else None
    v2 = value.get("v2Checkpoint")
    v2_path = v2.get("path") if isinstance(v2, dict) and isinstance(v2.get("path"), str) else None
    fields = tuple(sorted(value))

    def hint(state: LastCheckpointState) -> LastCheckpointHint:
        return LastCheckpointHint(state=state, version=version, parts=parts, v2_path=v2_path, fields=fields)

    if latest is not None and version > latest:
        builder.find(
            LogFindingCode.LAST_CHECKPOINT_AHEAD_OF_LOG,
            Severity.WARN,
            f"_last_checkpoint points at version {version}, past the latest version {latest}",
            hint_version=version,
            latest_version=latest,
        )
        return hint(LastCheckpointState.AHEAD_OF_LOG)
    if not _hint_target_exists(listing, version, parts, v2_path):
        builder.find(
            LogFindingCode.STALE_LAST_CHECKPOINT,
            Severity.WARN,
            f"_last_checkpoint points at version {version} but its checkpoint files are missing "
            "(deltalake refuses to open such a table)",
            hint_version=version,
            hint_parts=parts,
        )
        return hint(LastCheckpointState.STALE)
    if used is not None and version < used.version:
        builder.find(
            LogFindingCode.LAST_CHECKPOINT_BEHIND,
            Severity.INFO,
            f"_last_checkpoint points at version {version}; a newer checkpoint ({used.version}) exists",
            hint_version=version,
            checkpoint_version=used.version,
        )
        return hint(LastCheckpointState.BEHIND)
    return hint(LastCheckpointState.OK)


def _corrupt_hint(
    builder: _Builder, error: str, fields: Mapping[str, Any] | None = None
) -> LastCheckpointHint:
    builder.find(
        LogFindingCode.CORRUPT_LAST_CHECKPOINT, Severity.WARN, f"_last_checkpoint is corrupt: {error}"
    )
    return LastCheckpointHint(
        state=LastCheckpointState.CORRUPT, fields=tuple(sorted(fields or {})), error=error
    )


def _hint_target_exists(listing: _Listing, version: int, parts: int | None, v2_path: str | None) -> bool:
    if v2_path is not None:
        return version in listing.uuid_named and os.path.basename(v2_path) in listing.uuid_named[version]
    if parts is not None and parts > 1:
        return len(listing.multi_part.get((version, parts), {})) == parts
    return version in listing.checkpoint_versions()


def _find_gaps(builder: _Builder, listing: _Listing, used: CheckpointInfo | None, latest: int) -> None:
    start = used.version + 1 if used else 0
    gaps: list[VersionGap] = []
    present = set(listing.commits)
    for version_range, blocking in ((range(start, latest + 1), True), (range(0, start), False)):
        run: list[int] = []
        for version in version_range:
            if version in present:
                if run:
                    gaps.append(VersionGap(start=run[0], end=run[-1], blocking=blocking))
                    run = []
            else:
                run.append(version)
        if run:
            gaps.append(VersionGap(start=run[0], end=run[-1], blocking=blocking))
    history_gaps = [g for g in gaps if not g.blocking]
    # Commits before the checkpoint are normally removed by metadata cleanup: only a hole *between*
    # kept commits is worth mentioning, and then only as history (time travel) information.
    kept = [v for v in present if v < start]
    first_kept = min(kept, default=start)
    history_gaps = [g for g in history_gaps if g.start > first_kept]
    blocking_gaps = [g for g in gaps if g.blocking]
    for gap in blocking_gaps:
        covered = f"after checkpoint {used.version}" if used else "and no checkpoint covers them"
        builder.find(
            LogFindingCode.VERSION_GAP,
            Severity.ERROR,
            f"commit(s) {gap.start}..{gap.end} missing {covered}: the latest snapshot cannot be rebuilt",
            start=gap.start,
            end=gap.end,
        )
    for gap in history_gaps:
        builder.find(
            LogFindingCode.HISTORY_GAP,
            Severity.INFO,
            f"commit(s) {gap.start}..{gap.end} missing before checkpoint {start - 1} (no time travel there)",
            start=gap.start,
            end=gap.end,
        )
    builder.values["version_gaps"] = (*blocking_gaps, *history_gaps)


def _replay_commit(
    builder: _Builder, fs: pafs.FileSystem, *, log_dir: str, name: str, version: int, state: _State
) -> None:
    try:
        text = _read_text(fs, f"{log_dir}/{name}")
    except Exception as exc:  # noqa: BLE001 - unreadable commit file: a corrupt commit
        builder.find(
            LogFindingCode.CORRUPT_COMMIT,
            Severity.ERROR,
            f"commit {version} is unreadable: {_exception_text(exc)}",
            version=version,
            **{"exception.type": type(exc).__name__, "exception.message": error_text(exc, 400)},
        )
        return
    actions, errors = _parse_commit(text)
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
    builder: _Builder, state: _State, used: CheckpointInfo | None, since: int, latest: int
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


def _check_files(builder: _Builder, fs: pafs.FileSystem, root: str, state: _State, limit: int) -> None:
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
            f"data files could not be checked: {_exception_text(exc)}",
            **{"exception.type": type(exc).__name__, "exception.message": error_text(exc, 400)},
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
            f"deletion vector files could not be checked: {_exception_text(exc)}",
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
