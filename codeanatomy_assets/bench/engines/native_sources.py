"""What ``native`` registers per table: a folder whose Parquet listing is exactly the table's live files."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from deltalake import DeltaTable


@dataclass(frozen=True, slots=True, kw_only=True)
class NativeSource:
    """What ``native`` registers for one table, and why that is exactly the table's live files."""

    table: str
    uri: str
    path: str
    """The folder given to ``register_parquet``: the table's own, or a folder of links."""
    live_files: int
    log_removes: int
    folder_is_live_files: bool
    linked: bool

    def to_row(self) -> dict[str, Any]:
        """The JSON record (every field)."""
        return asdict(self)


def _log_removes(uri: str) -> int:
    """``remove`` actions in the table's log (JSON commits and checkpoints)."""
    log = Path(uri) / "_delta_log"
    removes = 0
    for path in sorted(log.iterdir()):
        if path.name.endswith(".json"):
            lines = path.read_text("utf-8").splitlines()
            removes += sum(1 for line in lines if line.strip() and "remove" in json.loads(line))
        elif ".checkpoint" in path.name and path.name.endswith(".parquet"):
            removes += pq.read_table(path, columns=["remove"]).column("remove").drop_null().length()
    return removes


def _plain_parquet_problems(table: DeltaTable) -> list[str]:
    """Why the live files read as plain Parquet would not give the table's rows (empty: they do)."""
    problems = []
    if table.metadata().partition_columns:
        problems.append("partition columns")
    features = set(table.protocol().reader_features or ())
    problems += sorted(features & {"deletionVectors", "columnMapping"})
    mode = table.metadata().configuration.get("delta.columnMapping.mode", "none")
    if mode != "none":
        problems.append(f"delta.columnMapping.mode={mode}")
    return problems


def _listed_parquet(uri: str) -> list[str]:
    """The ``*.parquet`` files of the table's folder (resolved, sorted): what a listing table reads."""
    return sorted(
        os.path.realpath(p) for p in Path(uri).iterdir() if p.is_file() and p.name.endswith(".parquet")
    )


def native_source(name: str, uri: str, link_root: Path) -> NativeSource:
    """The folder whose listing is exactly the table's live files (linking them under ``link_root``
    where the table's own folder is not).

    Raises ``ValueError`` for a table whose Parquet files alone do not hold its rows (partitions,
    deletion vectors, column mapping): no listing of them is a correct baseline.
    """
    table = DeltaTable(uri)
    problems = _plain_parquet_problems(table)
    if problems:
        raise ValueError(f"{uri}: not readable as plain Parquet ({', '.join(problems)})")
    live = sorted(os.path.realpath(f) for f in table.file_uris())
    listed = _listed_parquet(uri)
    removes = _log_removes(uri)
    exact = removes == 0 and live == listed
    return NativeSource(
        table=name,
        uri=uri,
        path=str(uri if exact else _link_folder(live, link_root / name)),
        live_files=len(live),
        log_removes=removes,
        folder_is_live_files=live == listed,
        linked=not exact,
    )


def native_sources(uris: Mapping[str, str], link_root: Path) -> dict[str, NativeSource]:
    """:func:`native_source` of each table."""
    return {name: native_source(name, uri, link_root) for name, uri in uris.items()}


def _link_folder(files: Sequence[str], folder: Path) -> Path:
    """A folder holding one hard link (a symbolic one across file systems) per file, named by position."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, target in enumerate(files):
        link = folder / f"{index:06d}.parquet"
        try:
            os.link(target, link)
        except OSError:
            link.symlink_to(target)
    return folder
