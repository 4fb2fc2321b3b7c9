"""Listing ``_delta_log``, parsing its action files, and analysing its checkpoints.

The listing sorts the log's files by the protocol's naming schemes (commits, classic, multi-part and
UUID-named v2 checkpoints, log compactions); commits are parsed line by line and checkpoints and sidecars
read from Parquet. The checkpoint analysis picks the candidates (an incomplete multi-part checkpoint is
reported and skipped), checks the ``_last_checkpoint`` hint against the listing, and finds version gaps.
Every problem found becomes a finding on the :class:`~codeanatomy_assets.delta.health.HealthBuilder`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from codeanatomy_assets.delta.health import (
    CheckpointInfo,
    CheckpointKind,
    HealthBuilder,
    LastCheckpointHint,
    LastCheckpointState,
    LogFindingCode,
    VersionGap,
)
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.errors import exception_text

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


# ----------------------------------------------------------------------------------------------------
# Listing


@dataclass(slots=True)
class Listing:
    commits: dict[int, str] = field(default_factory=dict)
    classic: dict[int, str] = field(default_factory=dict)
    multi_part: dict[tuple[int, int], dict[int, str]] = field(default_factory=dict)
    uuid_named: dict[int, list[str]] = field(default_factory=dict)
    compactions: list[str] = field(default_factory=list)
    unrecognized: list[str] = field(default_factory=list)
    has_last_checkpoint: bool = False

    def checkpoint_versions(self) -> set[int]:
        return set(self.classic) | {v for v, _ in self.multi_part} | set(self.uuid_named)

    def add(self, name: str) -> None:
        """File ``name`` of ``_delta_log`` under its naming scheme (ignored: checksums, temporary files)."""
        if name == "_last_checkpoint":
            self.has_last_checkpoint = True
        elif m := _COMMIT_RE.match(name):
            self.commits[int(m.group(1))] = name
        elif m := _CLASSIC_RE.match(name):
            self.classic[int(m.group(1))] = name
        elif m := _MULTI_PART_RE.match(name):
            key = (int(m.group(1)), int(m.group(3)))
            self.multi_part.setdefault(key, {})[int(m.group(2))] = name
        elif m := _UUID_RE.match(name):
            self.uuid_named.setdefault(int(m.group(1)), []).append(name)
        elif _COMPACTED_RE.match(name):
            self.compactions.append(name)
        elif not (_CRC_RE.match(name) or name.startswith((".", "_")) or name.endswith((".crc", ".tmp"))):
            self.unrecognized.append(name)


def list_log(fs: pafs.FileSystem, log_dir: str) -> Listing:
    """The files of ``log_dir`` (not its subdirectories) sorted by the protocol's naming schemes."""
    listing = Listing()
    for info in fs.get_file_info(pafs.FileSelector(log_dir, recursive=False)):
        if info.type != pafs.FileType.Directory:
            listing.add(info.base_name)
    listing.compactions.sort()
    listing.unrecognized.sort()
    return listing


# ----------------------------------------------------------------------------------------------------
# Reading actions


def parse_commit(text: str) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """Actions of a commit and the (line number, error) of every line that is not a JSON object."""
    actions: list[dict[str, Any]] = []
    errors: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            errors.append((number, exception_text(exc)))
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


def read_parquet_actions(
    fs: pafs.FileSystem,
    path: str,
    *,
    wanted: tuple[str, ...] = _CHECKPOINT_COLUMNS,
    fields: Mapping[str, tuple[str, ...]] = _FILE_ACTION_FIELDS,
) -> list[dict[str, Any]]:
    """The actions of a Parquet checkpoint (or sidecar) file: its ``wanted`` action columns, each struct in
    ``fields`` projected to those fields (the log reader needs only paths and deletion vectors of file
    actions; the layout reads them whole with ``fields={}``)."""
    schema_names = pq.read_schema(path, filesystem=fs).names
    columns = [c for c in wanted if c in schema_names]
    table = pq.read_table(path, filesystem=fs, columns=columns)
    actions: list[dict[str, Any]] = []
    for column in columns:
        values = table.column(column)
        if column in fields:
            values = _project_struct(values, fields[column])
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


def read_text(fs: pafs.FileSystem, path: str) -> str:
    with fs.open_input_stream(path) as stream:
        return stream.read().decode("utf-8", errors="replace")


# ----------------------------------------------------------------------------------------------------
# Checkpoint analysis


def candidate_order(candidate: CheckpointInfo) -> tuple[int, int]:
    # Newest first; for one version prefer v2 (UUID) over multi-part over classic, as delta-kernel does.
    rank = {CheckpointKind.CLASSIC: 0, CheckpointKind.MULTI_PART: 1, CheckpointKind.V2_UUID: 2}[
        candidate.kind
    ]
    return (candidate.version, rank)


def checkpoint_candidates(builder: HealthBuilder, listing: Listing) -> list[CheckpointInfo]:
    """Every checkpoint of the listing (incomplete multi-part ones included, and reported)."""
    candidates = [
        CheckpointInfo(version=v, kind=CheckpointKind.CLASSIC, files=(name,))
        for v, name in listing.classic.items()
    ]
    candidates.extend(
        _multi_part_candidate(builder, version, total, parts)
        for (version, total), parts in listing.multi_part.items()
    )
    for version, names in listing.uuid_named.items():
        candidates.extend(
            CheckpointInfo(version=version, kind=CheckpointKind.V2_UUID, files=(name,))
            for name in sorted(names)
        )
    return candidates


def _multi_part_candidate(
    builder: HealthBuilder, version: int, total: int, parts: Mapping[int, str]
) -> CheckpointInfo:
    """The multi-part checkpoint ``version`` of ``total`` parts (``parts``: file by part number)."""
    present = sorted(p for p in parts if 1 <= p <= total)
    if len(present) < total:
        builder.find(
            LogFindingCode.INCOMPLETE_MULTIPART_CHECKPOINT,
            Severity.WARN,
            f"multi-part checkpoint {version} has {len(present)} of {total} parts; readers ignore it",
            version=version,
            parts_missing=sorted(set(range(1, total + 1)) - set(present)),
        )
    return CheckpointInfo(
        version=version,
        kind=CheckpointKind.MULTI_PART,
        files=tuple(parts[p] for p in present),
        parts_expected=total,
        parts_present=len(present),
    )


def read_checkpoint_actions(
    fs: pafs.FileSystem, log_dir: str, candidate: CheckpointInfo
) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    for name in candidate.files:
        path = f"{log_dir}/{name}"
        if name.endswith(".json"):
            parsed, errors = parse_commit(read_text(fs, path))
            if errors:
                line, error = errors[0]
                raise ValueError(f"{name} line {line}: {error}")
            actions.extend(parsed)
        else:
            actions.extend(read_parquet_actions(fs, path))
    if not any("protocol" in a for a in actions) and not any("metaData" in a for a in actions):
        raise ValueError("checkpoint holds neither protocol nor metaData")
    return actions


def sidecar_paths(actions: Iterable[Mapping[str, Any]]) -> list[str]:
    return [
        a["sidecar"]["path"]
        for a in actions
        if isinstance(a.get("sidecar"), dict) and isinstance(a["sidecar"].get("path"), str)
    ]


def sidecar_location(log_dir: str, path: str) -> str:
    # Sidecars live in _delta_log/_sidecars; the action stores a URI-encoded name (or, rarely, a full URI).
    if "://" in path:
        return urllib.parse.unquote(urllib.parse.urlsplit(path).path)
    return f"{log_dir}/_sidecars/{urllib.parse.unquote(path)}"


def read_hint(
    builder: HealthBuilder,
    fs: pafs.FileSystem,
    log_dir: str,
    listing: Listing,
    *,
    has_checkpoints: bool,
    used: CheckpointInfo | None,
    latest: int | None,
) -> LastCheckpointHint:
    """The ``_last_checkpoint`` hint, checked against the listing, the checkpoint ``used`` and ``latest``."""
    if not listing.has_last_checkpoint:
        return _missing_hint(builder, has_checkpoints)
    value = _read_hint_object(builder, fs, log_dir)
    if isinstance(value, LastCheckpointHint):
        return value
    hint = _parsed_hint(builder, value)
    if hint.version is None:
        return hint
    return _judged_hint(builder, hint, hint.version, listing=listing, used=used, latest=latest)


def _missing_hint(builder: HealthBuilder, has_checkpoints: bool) -> LastCheckpointHint:
    if has_checkpoints:
        builder.find(
            LogFindingCode.LAST_CHECKPOINT_MISSING,
            Severity.INFO,
            "checkpoints exist but _last_checkpoint is absent (readers list the log instead)",
        )
    return LastCheckpointHint(state=LastCheckpointState.MISSING)


def _read_hint_object(
    builder: HealthBuilder, fs: pafs.FileSystem, log_dir: str
) -> dict[str, Any] | LastCheckpointHint:
    """The JSON object of ``_last_checkpoint``, or the (reported) empty or corrupt hint."""
    try:
        text = read_text(fs, f"{log_dir}/_last_checkpoint")
    except Exception as exc:  # noqa: BLE001 - unreadable hint file: reported as corrupt
        return _corrupt_hint(builder, exception_text(exc))
    if not text.strip():
        builder.find(LogFindingCode.LAST_CHECKPOINT_EMPTY, Severity.WARN, "_last_checkpoint is empty")
        return LastCheckpointHint(state=LastCheckpointState.EMPTY)
    try:
        value = json.loads(text)
    except ValueError as exc:
        return _corrupt_hint(builder, f"not JSON: {exception_text(exc)}")
    if not isinstance(value, dict):
        return _corrupt_hint(builder, f"a JSON {type(value).__name__}, not an object")
    return value


def _parsed_hint(builder: HealthBuilder, value: Mapping[str, Any]) -> LastCheckpointHint:
    """The hint a ``_last_checkpoint`` object gives (corrupt, and reported, without a valid version)."""
    version = value.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        return _corrupt_hint(builder, f"'version' is {version!r}, not a non-negative integer", fields=value)
    parts = value.get("parts")
    v2 = value.get("v2Checkpoint")
    return LastCheckpointHint(
        state=LastCheckpointState.OK,
        version=version,
        parts=parts if isinstance(parts, int) and not isinstance(parts, bool) else None,
        v2_path=v2.get("path") if isinstance(v2, dict) and isinstance(v2.get("path"), str) else None,
        fields=tuple(sorted(value)),
    )


def _judged_hint(
    builder: HealthBuilder,
    hint: LastCheckpointHint,
    version: int,
    *,
    listing: Listing,
    used: CheckpointInfo | None,
    latest: int | None,
) -> LastCheckpointHint:
    """The hint pointing at ``version`` in the state the log puts it in (each problem reported)."""
    if latest is not None and version > latest:
        return _hint_ahead_of_log(builder, hint, version, latest)
    if not _hint_target_exists(listing, version, hint.parts, hint.v2_path):
        return _stale_hint(builder, hint, version)
    if used is not None and version < used.version:
        return _hint_behind(builder, hint, version, used.version)
    return hint


def _hint_ahead_of_log(
    builder: HealthBuilder, hint: LastCheckpointHint, version: int, latest: int
) -> LastCheckpointHint:
    builder.find(
        LogFindingCode.LAST_CHECKPOINT_AHEAD_OF_LOG,
        Severity.WARN,
        f"_last_checkpoint points at version {version}, past the latest version {latest}",
        hint_version=version,
        latest_version=latest,
    )
    return replace(hint, state=LastCheckpointState.AHEAD_OF_LOG)


def _stale_hint(builder: HealthBuilder, hint: LastCheckpointHint, version: int) -> LastCheckpointHint:
    builder.find(
        LogFindingCode.STALE_LAST_CHECKPOINT,
        Severity.WARN,
        f"_last_checkpoint points at version {version} but its checkpoint files are missing "
        "(deltalake refuses to open such a table)",
        hint_version=version,
        hint_parts=hint.parts,
    )
    return replace(hint, state=LastCheckpointState.STALE)


def _hint_behind(
    builder: HealthBuilder, hint: LastCheckpointHint, version: int, newest: int
) -> LastCheckpointHint:
    builder.find(
        LogFindingCode.LAST_CHECKPOINT_BEHIND,
        Severity.INFO,
        f"_last_checkpoint points at version {version}; a newer checkpoint ({newest}) exists",
        hint_version=version,
        checkpoint_version=newest,
    )
    return replace(hint, state=LastCheckpointState.BEHIND)


def _corrupt_hint(
    builder: HealthBuilder, error: str, fields: Mapping[str, Any] | None = None
) -> LastCheckpointHint:
    builder.find(
        LogFindingCode.CORRUPT_LAST_CHECKPOINT, Severity.WARN, f"_last_checkpoint is corrupt: {error}"
    )
    return LastCheckpointHint(
        state=LastCheckpointState.CORRUPT, fields=tuple(sorted(fields or {})), error=error
    )


def _hint_target_exists(listing: Listing, version: int, parts: int | None, v2_path: str | None) -> bool:
    if v2_path is not None:
        return version in listing.uuid_named and os.path.basename(v2_path) in listing.uuid_named[version]
    if parts is not None and parts > 1:
        return len(listing.multi_part.get((version, parts), {})) == parts
    return version in listing.checkpoint_versions()


def find_gaps(builder: HealthBuilder, listing: Listing, used: CheckpointInfo | None, latest: int) -> None:
    """Report the commits missing after the checkpoint ``used`` (blocking) and, as history, before it."""
    start = used.version + 1 if used else 0
    present = set(listing.commits)
    blocking = _missing_runs(range(start, latest + 1), present, blocking=True)
    # Commits before the checkpoint are normally removed by metadata cleanup: only a hole *between*
    # kept commits is worth mentioning, and then only as history (time travel) information.
    first_kept = min((v for v in present if v < start), default=start)
    history = [g for g in _missing_runs(range(start), present, blocking=False) if g.start > first_kept]
    _report_gaps(builder, blocking, history, used.version if used else None)
    builder.values["version_gaps"] = (*blocking, *history)


def _report_gaps(
    builder: HealthBuilder, blocking: list[VersionGap], history: list[VersionGap], checkpoint: int | None
) -> None:
    """Report the gaps after and (``history``) before the ``checkpoint`` used."""
    covered = f"after checkpoint {checkpoint}" if checkpoint is not None else "and no checkpoint covers them"
    for gap in blocking:
        builder.find(
            LogFindingCode.VERSION_GAP,
            Severity.ERROR,
            f"commit(s) {gap.start}..{gap.end} missing {covered}: the latest snapshot cannot be rebuilt",
            start=gap.start,
            end=gap.end,
        )
    for gap in history:
        builder.find(
            LogFindingCode.HISTORY_GAP,
            Severity.INFO,
            f"commit(s) {gap.start}..{gap.end} missing before checkpoint {checkpoint} (no time travel there)",
            start=gap.start,
            end=gap.end,
        )


def _missing_runs(versions: range, present: set[int], *, blocking: bool) -> list[VersionGap]:
    """The runs of consecutive ``versions`` absent from ``present``.

    >>> [(g.start, g.end) for g in _missing_runs(range(8), {0, 3, 4}, blocking=True)]
    [(1, 2), (5, 7)]
    """
    missing = [v for v in versions if v not in present]
    # Consecutive versions share their difference to their position in ``missing``.
    runs = [
        [v for _, v in run] for _, run in itertools.groupby(enumerate(missing), key=lambda iv: iv[1] - iv[0])
    ]
    return [VersionGap(start=run[0], end=run[-1], blocking=blocking) for run in runs]
