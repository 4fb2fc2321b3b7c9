"""The health of a Delta log as records: findings, checkpoint facts, version gaps, :class:`LogHealth`.

:func:`codeanatomy_assets.delta.log.read_log_health` builds these records (through :class:`HealthBuilder`);
they are what registration, the protocol rules, ``codeanatomy doctor`` and the ``delta_log_health_v1``
event read. :func:`effective_features` fills in the features implied by legacy protocol versions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.errors import exception_attributes, exception_text

DEFAULT_CHECKPOINT_INTERVAL: Final = 100
"""``delta.checkpointInterval`` when the table does not set it."""

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
    """``_delta_log`` files read directly by :mod:`codeanatomy_assets.delta.log`."""
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

    def to_row(self) -> dict[str, Any]:
        """Every field, JSON-ready (the payload of ``delta_log_health_v1``)."""
        return {
            **self._log_row(),
            **self._table_row(),
            **self._files_row(),
            "findings": [f.to_row() for f in self.findings],
        }

    def _log_row(self) -> dict[str, Any]:
        """The log's own facts: versions, checkpoints, gaps."""
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
        }

    def _table_row(self) -> dict[str, Any]:
        """What the snapshot says about the table: protocol, features, metadata."""
        return {
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
        }

    def _files_row(self) -> dict[str, Any]:
        """The live data files and the deletion vectors checked for existence."""
        return {
            "live_files": self.live_files,
            "data_files_checked": self.data_files_checked,
            "data_files_missing": self.data_files_missing,
            "missing_data_file_examples": list(self.missing_data_file_examples),
            "deletion_vector_files_missing": self.deletion_vector_files_missing,
        }


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
    return (
        _features_in_force(min_reader_version, _READER_IMPLIED, reader_features),
        _features_in_force(min_writer_version, _WRITER_IMPLIED, writer_features),
    )


def _features_in_force(
    version: int | None, implied: Mapping[int, frozenset[str]], explicit: Iterable[str] | None
) -> tuple[str, ...]:
    """The features a legacy ``version`` implies, else the ``explicit`` list (none without a version)."""
    if version is None:
        return ()
    if version in implied:
        return tuple(sorted(implied[version]))
    return tuple(sorted(set(explicit or ())))


class HealthBuilder:
    """Collects the pieces of a :class:`LogHealth` (a small mutable helper, internal)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.findings: list[LogFinding] = []
        self.values: dict[str, Any] = {}

    def find(self, code: LogFindingCode, severity: Severity, message: str, **detail: Any) -> None:
        self.findings.append(LogFinding(code=code, severity=severity, message=message, detail=detail))

    def find_exception(
        self, code: LogFindingCode, severity: Severity, context: str, exc: BaseException, **detail: Any
    ) -> None:
        """A finding for a caught exception: ``<context>: <Type: message>``, with the ``exception.*``
        attributes after ``detail``."""
        self.find(code, severity, f"{context}: {exception_text(exc)}", **detail, **exception_attributes(exc))

    def build(self, source: LogSource, present: bool) -> LogHealth:
        return LogHealth(
            uri=self.uri,
            source=source,
            delta_log_present=present,
            findings=tuple(self.findings),
            **self.values,
        )
