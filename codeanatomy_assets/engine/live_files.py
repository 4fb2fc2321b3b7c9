"""The live files of a registered table, as scan units count them, and what Delta's log would keep.

Pinned versions are loaded once per process (a table version never changes); a ``delta_pruned_parquet``
table reuses the snapshot its registration loaded, whose candidates per predicate are cached.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.delta.pruned import PinnedSnapshot, open_snapshot


@dataclass(slots=True)
class LiveFiles:
    """The live files of one registered table (``files`` ``None``: unreadable, ``error`` says why)."""

    table: DeltaTable | None
    files: tuple[str, ...] | None
    error: str | None
    prunable: dict[str, tuple[int | None, str | None]] = field(default_factory=dict)
    pinned: PinnedSnapshot | None = None
    """The snapshot ``delta_pruned_parquet`` registration loaded: its candidates per predicate are cached,
    so a predicate plan-time pruning already asked is not evaluated again."""

    def delta_candidates(self, predicate: str) -> tuple[int | None, str | None]:
        """``(files Delta's log keeps for predicate, error)``, computed once per predicate."""
        if predicate not in self.prunable:
            self.prunable[predicate] = self._count_candidates(predicate)
        return self.prunable[predicate]

    def _count_candidates(self, predicate: str) -> tuple[int | None, str | None]:
        if self.table is None:
            return None, self.error
        try:
            kept = (
                self.pinned.candidates(predicate)
                if self.pinned is not None
                else self.table.file_uris(file_pruning_predicate=predicate)
            )
        except (DeltaError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            return None, f"file_pruning_predicate failed: {type(exc).__name__}: {first}"
        return len(kept), None


def path_key(uri: str) -> str:
    """A file location as DataFusion prints it: no scheme (and no bucket for object stores), no leading /."""
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    elif "://" in uri:
        uri = uri.split("://", 1)[1].split("/", 1)[-1]
    return uri.lstrip("/")


def open_live_files(registered: RegisteredTable) -> LiveFiles:
    """The live files of ``registered`` (never raises: an unreadable table carries its error)."""
    if registered.provider_mode is ProviderMode.DELTA_PRUNED_PARQUET and registered.version is not None:
        pinned = _pinned_live_files(registered, registered.version)
        if pinned is not None:
            return pinned
    options = tuple(sorted(registered.storage_options.items()))
    try:
        if registered.version is None:  # "latest" may move: open it every time
            table, files = _load_snapshot(registered.uri, None, options)
        else:
            table, files = _pinned_snapshot(registered.uri, registered.version, options)
    except (DeltaError, OSError, ValueError) as exc:  # not a Delta table, or unreadable: say so in the unit
        return LiveFiles(table=None, files=None, error=f"live files unavailable: {type(exc).__name__}: {exc}")
    return LiveFiles(table=table, files=files, error=None)


def _pinned_live_files(registered: RegisteredTable, version: int) -> LiveFiles | None:
    """The snapshot ``delta_pruned_parquet`` registration pinned (``None``: unreadable, opened as any)."""
    try:
        pinned = open_snapshot(registered.uri, version=version, storage_options=registered.storage_options)
    except (DeltaError, OSError, ValueError):
        return None  # opened as for any mode, which records the error
    return LiveFiles(table=pinned.table, files=tuple(f.uri for f in pinned.files), error=None, pinned=pinned)


def _load_snapshot(
    uri: str, version: int | None, options: tuple[tuple[str, str], ...]
) -> tuple[DeltaTable, tuple[str, ...]]:
    table = DeltaTable(uri, version=version, storage_options=dict(options) or None)
    return table, tuple(table.file_uris())


@functools.lru_cache(maxsize=256)
def _pinned_snapshot(
    uri: str, version: int, options: tuple[tuple[str, str], ...]
) -> tuple[DeltaTable, tuple[str, ...]]:
    """A table version never changes, so its snapshot is loaded once per process."""
    return _load_snapshot(uri, version, options)
