"""Attribution: which registered table each physical scan of an executed plan read.

A scan is tied by the live files it read (all of one table's), else as the only scan left of a table,
else by its columns (in-memory tables read no file); :attr:`ScanUnit.attribution
<codeanatomy_assets.engine.scan.ScanUnit.attribution>` says how.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from codeanatomy_assets.delta.pruned import link_target
from codeanatomy_assets.engine.live_files import LiveFiles, path_key
from codeanatomy_assets.engine.predicates import LogicalScan
from codeanatomy_assets.engine.scan_metrics import PhysicalScan

Attributed = tuple[PhysicalScan, str | None, str]
"""A physical scan, the table it was tied to (``None``: none) and how (:attr:`ScanUnit.attribution`)."""


def file_owners(snapshots: Mapping[str, LiveFiles]) -> dict[str, str]:
    """The table of each live file, by its path as DataFusion prints it."""
    owner: dict[str, str] = {}
    for name, snapshot in snapshots.items():
        for uri in snapshot.files or ():
            owner[path_key(uri)] = name
    return owner


def attribute_scans(
    physical: Iterable[PhysicalScan],
    owner: Mapping[str, str],
    remaining: Counter[str],
    by_table: Mapping[str, Sequence[LogicalScan]],
) -> list[Attributed]:
    """Tie each physical scan to its table: by the files it read, else as the only scan left of a table,
    else by its columns. ``remaining`` (logical scans per table) is counted down as scans are tied."""
    attributed = [_tie_by_files(scan, owner, remaining) for scan in physical]
    left = [name for name, count in remaining.items() if count > 0]
    unmatched = [i for i, (_, name, _) in enumerate(attributed) if name is None]
    if len(left) == 1 and len(unmatched) <= remaining[left[0]]:
        for i in unmatched:
            attributed[i] = (attributed[i][0], left[0], "only_scan")
    else:
        _attribute_by_columns(attributed, remaining, by_table)
    return attributed


def _tie_by_files(scan: PhysicalScan, owner: Mapping[str, str], remaining: Counter[str]) -> Attributed:
    """The scan tied to the table whose live files it read, when they are all of one table."""
    names = {owner.get(path_key(link_target(f) or f)) for f in scan.filenames}
    name = names.pop() if len(names) == 1 else None
    if name is not None:
        remaining[name] -= 1
    return scan, name, "files" if name else "unattributed"


def _attribute_by_columns(
    attributed: list[Attributed],
    remaining: Counter[str],
    by_table: Mapping[str, Sequence[LogicalScan]],
) -> None:
    """Tie scans that read no file of a table (in-memory tables) by their columns: a scan whose column
    references (``id@0``, :func:`_child_columns`) fit the projection of only one table still unmatched is
    that table's. Repeated while it ties one more; ``remaining`` is updated."""
    progress = True
    while progress:
        progress = False
        for i, (scan, name, _) in enumerate(attributed):
            if name is not None or not scan.columns:
                continue
            fits = [
                table
                for table, count in remaining.items()
                if count > 0
                and any(_columns_fit(scan.columns, s.projection) for s in by_table.get(table, ()))
            ]
            if len(fits) == 1:
                attributed[i] = (scan, fits[0], "columns")
                remaining[fits[0]] -= 1
                progress = True


def _columns_fit(columns: Iterable[tuple[str, int]], projection: Sequence[str]) -> bool:
    return all(index < len(projection) and projection[index] == column for column, index in columns)
