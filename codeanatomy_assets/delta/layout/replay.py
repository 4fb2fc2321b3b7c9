"""Replaying a table's file actions (checkpoint + commits) with full add and remove actions, checking
each ``<v>.crc`` checksum against the state at its version."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pyarrow.fs as pafs

from codeanatomy_assets.delta.checkpoints import parse_commit, read_parquet_actions, read_text
from codeanatomy_assets.delta.health import LogHealth
from codeanatomy_assets.delta.layout.records import (
    LayoutFinding,
    LayoutFindingCode,
    as_int,
    version_count,
)
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.errors import exception_text

_FILE_ACTIONS: Final = ("metaData", "add", "remove")
"""The checkpoint columns the layout replays, whole (statistics included)."""

# ----------------------------------------------------------------------------------------------------
# Replaying the file actions


@dataclass(slots=True)
class Replay:
    """Live add actions and tombstones (remove actions) by path, as of one version."""

    adds: dict[str, dict[str, Any]] = field(default_factory=dict)
    removes: dict[str, dict[str, Any]] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    def apply(self, action: Mapping[str, Any]) -> None:
        """Apply one action: an add makes a path live, a remove tombstones it."""
        if isinstance(meta := action.get("metaData"), dict):
            self.metadata = meta
        if isinstance(add := action.get("add"), dict) and isinstance(add.get("path"), str):
            self.adds[add["path"]] = add
            self.removes.pop(add["path"], None)
        if isinstance(remove := action.get("remove"), dict) and isinstance(remove.get("path"), str):
            self.adds.pop(remove["path"], None)
            self.removes[remove["path"]] = remove

    @property
    def table_bytes(self) -> int:
        """The sum of the live files' sizes."""
        return sum(as_int(a.get("size")) or 0 for a in self.adds.values())


def _checkpoint_actions(fs: pafs.FileSystem, log_dir: str, health: LogHealth) -> Iterable[dict[str, Any]]:
    """Every action of the checkpoint the log reader used, with full file actions (stats included)."""
    checkpoint = health.checkpoint
    if checkpoint is None:
        return
    names = [*checkpoint.files, *(f"_sidecars/{s}" for s in checkpoint.sidecars)]
    for name in names:
        path = f"{log_dir}/{name}"
        if name.endswith(".json"):
            yield from parse_commit(read_text(fs, path))[0]
        else:
            yield from read_parquet_actions(fs, path, wanted=_FILE_ACTIONS, fields={})


# ----------------------------------------------------------------------------------------------------
# Reading a table's layout


@dataclass(frozen=True, slots=True)
class LogFile:
    size: int
    mtime_ms: int | None


def list_log_files(fs: pafs.FileSystem, log_dir: str) -> dict[str, LogFile]:
    """Every file in ``_delta_log`` (sidecars included) by name relative to it: size and modification time."""
    files: dict[str, LogFile] = {}
    for info in fs.get_file_info(pafs.FileSelector(log_dir, recursive=True, allow_not_found=True)):
        if info.type == pafs.FileType.File:
            mtime = info.mtime_ns // 1_000_000 if info.mtime_ns is not None else None
            files[info.path[len(log_dir) + 1 :]] = LogFile(info.size or 0, mtime)
    return files


class Replayer:
    """Replays checkpoint + commits once, checking each ``<v>.crc`` against the state at its version."""

    def __init__(self, fs: pafs.FileSystem, log_dir: str, log_files: Mapping[str, LogFile]) -> None:
        self.fs, self.log_dir, self.log_files = fs, log_dir, log_files
        self.replay = Replay()
        self.crc_checked = 0
        self.crc_findings: list[LayoutFinding] = []

    def run(self, health: LogHealth) -> Replay:
        start = 0
        if health.checkpoint is not None:
            try:
                for action in _checkpoint_actions(self.fs, self.log_dir, health):
                    self.replay.apply(action)
            except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint makes the layout incomplete
                self.replay.problems.append(f"checkpoint {health.checkpoint.version}: {exception_text(exc)}")
            start = health.checkpoint.version + 1
            self._check_crc(health.checkpoint.version)
        for version in range(start, version_count(health.latest_version)):
            self._apply_commit(version)
            self._check_crc(version)
        return self.replay

    def _apply_commit(self, version: int) -> None:
        name = f"{version:020d}.json"
        if name not in self.log_files:
            self.replay.problems.append(f"commit {version} is missing")
            return
        try:
            actions, errors = parse_commit(read_text(self.fs, f"{self.log_dir}/{name}"))
        except Exception as exc:  # noqa: BLE001 - an unreadable commit makes the layout incomplete
            self.replay.problems.append(f"commit {version}: {exception_text(exc)}")
            return
        if errors:
            self.replay.problems.append(f"commit {version}: {len(errors)} unparsable line(s)")
        for action in actions:
            self.replay.apply(action)

    def _check_crc(self, version: int) -> None:
        name = f"{version:020d}.crc"
        if name not in self.log_files:
            return
        self.crc_checked += 1
        try:
            crc = json.loads(read_text(self.fs, f"{self.log_dir}/{name}"))
            expected = (as_int(crc.get("numFiles")), as_int(crc.get("tableSizeBytes")))
        except Exception as exc:  # noqa: BLE001 - an unreadable checksum is a finding
            self.crc_findings.append(_crc_unreadable(name, exception_text(exc)))
            return
        actual = (len(self.replay.adds), self.replay.table_bytes)
        if expected != actual and not self.replay.problems:
            self.crc_findings.append(_crc_mismatch(name, version, expected, actual))


def _crc_unreadable(name: str, error: str) -> LayoutFinding:
    return LayoutFinding(
        LayoutFindingCode.CRC_UNREADABLE,
        Severity.WARN,
        f"{name} is not a readable checksum: {error}",
        "delete the checksum file or rewrite it with the writer that produced the table",
        detail={"file": name},
    )


def _crc_mismatch(
    name: str, version: int, expected: tuple[int | None, ...], actual: tuple[int, int]
) -> LayoutFinding:
    return LayoutFinding(
        LayoutFindingCode.CRC_MISMATCH,
        Severity.WARN,
        f"{name} says {expected[0]} files / {expected[1]} bytes but the log at version {version} holds "
        f"{actual[0]} files / {actual[1]} bytes",
        "readers that trust the checksum see a wrong table size; delete the stale .crc file",
        detail={
            "version": version,
            "crc_num_files": expected[0],
            "crc_table_size_bytes": expected[1],
            "log_num_files": actual[0],
            "log_table_size_bytes": actual[1],
        },
    )
