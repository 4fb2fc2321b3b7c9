"""Incremental extraction: only the files whose content changed are parsed again, and each extract table
gets one commit that replaces exactly the rows of the modules concerned.

The lake's ``source_files`` holds each file's ``content_hash`` (sha256 of its bytes). A rebuild hashes the
files of the tree and compares:

- **added**, **changed** (another hash, or no hash: the file was unreadable and is tried again) and
  **deleted** paths make the *affected modules* (two paths can name one module: ``a.py`` and
  ``a/__init__.py``; both are parsed again when either changes);
- every file of an affected module still in the tree is parsed again; rows of the affected modules are
  the only rows replaced (:func:`codeanatomy_assets.extract.layout.replace_modules`).

Each file's rows depend on that file alone (relative imports resolve against its own module name), so the
tables after an incremental rebuild hold the same rows as a full rebuild of the same tree (tested).

A full extraction happens instead, saying why, when the lake has no extract tables, when they were built
from another source root, by another extractor version or Python grammar (:data:`EXTRACTOR`), or when one
of them cannot be read.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from deltalake import DeltaTable

from codeanatomy_assets.extract.tree import SourceTree

EXTRACTOR_VERSION: Final = "1"
"""Bumped whenever the analysis gives other rows for the same file: a lake built before is rebuilt fully."""
EXTRACTOR: Final = f"{EXTRACTOR_VERSION}/py{sys.version_info.major}.{sys.version_info.minor}"
"""The extractor and the Python grammar the rows were parsed with, recorded in every extract commit."""
SOURCE_KEY: Final = "codeanatomy.source"
EXTRACTOR_KEY: Final = "codeanatomy.extractor"


@dataclass(frozen=True, slots=True, kw_only=True)
class TreeChanges:
    """How the tree differs from what the lake's ``source_files`` was built from."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    unchanged: int = 0
    modules: frozenset[str] = frozenset()
    """The modules whose rows are replaced (those of every added, changed or deleted path)."""

    @property
    def empty(self) -> bool:
        """Nothing to parse and nothing to delete."""
        return not (self.added or self.changed or self.deleted)

    def to_row(self) -> dict[str, Any]:
        """Counts and (at most 50 of) the paths of each kind."""
        return {
            "added": len(self.added),
            "changed": len(self.changed),
            "deleted": len(self.deleted),
            "unchanged": self.unchanged,
            "modules": len(self.modules),
            "added_paths": list(self.added[:50]),
            "changed_paths": list(self.changed[:50]),
            "deleted_paths": list(self.deleted[:50]),
        }


@dataclass(frozen=True, slots=True)
class PreviousFile:
    content_hash: str | None
    module: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RebuildPlan:
    """Full or incremental, why, and (incremental) what changed."""

    incremental: bool
    reason: str
    changes: TreeChanges | None = None

    @property
    def mode(self) -> str:
        """``incremental`` or ``full``."""
        return "incremental" if self.incremental else "full"


def hash_file(path: Path) -> str | None:
    """sha256 hex of a file's bytes, as extraction records it; ``None`` when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _previous_files(uri: str, storage_options: Mapping[str, str] | None) -> dict[str, PreviousFile]:
    table = DeltaTable(uri, storage_options=dict(storage_options or {}) or None)
    rows = table.to_pyarrow_table(columns=["path", "module", "content_hash"]).to_pylist()
    return {r["path"]: PreviousFile(r["content_hash"], r["module"]) for r in rows}


HISTORY_LOOKBACK: Final = 20
"""How many commits back the latest extraction's commit is looked for (past maintenance commits)."""


def _commit_metadata(uri: str, storage_options: Mapping[str, str] | None) -> Mapping[str, Any]:
    """The metadata of the latest commit an extraction wrote: maintenance (OPTIMIZE, VACUUM, a checkpoint)
    in between keeps the rows and does not force a full rebuild."""
    history = DeltaTable(uri, storage_options=dict(storage_options or {}) or None).history(HISTORY_LOOKBACK)
    return next((commit for commit in history if SOURCE_KEY in commit), {})


def _why_full(uris: Mapping[str, str], storage_options: Mapping[str, str] | None, source: str) -> str | None:
    """Why the lake's extract tables cannot be updated in place (``None`` when they can)."""
    options = dict(storage_options or {}) or None
    missing = [
        name for name, uri in uris.items() if not DeltaTable.is_deltatable(uri, storage_options=options)
    ]
    if missing:
        return f"no previous extract table {missing[0]}"
    for name, uri in uris.items():
        metadata = _commit_metadata(uri, storage_options)
        if metadata.get(SOURCE_KEY) != source:
            return f"{name} was extracted from {metadata.get(SOURCE_KEY)!r}, not {source!r}"
        if metadata.get(EXTRACTOR_KEY) != EXTRACTOR:
            return f"{name} was extracted by {metadata.get(EXTRACTOR_KEY)!r}, this is {EXTRACTOR!r}"
    return None


def diff_tree(tree: SourceTree, previous: Mapping[str, PreviousFile]) -> TreeChanges:
    """Hash every file of ``tree`` and compare with ``previous`` (path -> hash and module)."""
    current = {f.path: f.module for f in tree.files}
    added, changed, unchanged = [], [], 0
    for path in current:
        before = previous.get(path)
        if before is None:
            added.append(path)
        elif before.content_hash is None or before.content_hash != hash_file(tree.root / path):
            changed.append(path)
        else:
            unchanged += 1
    deleted = sorted(set(previous) - set(current))
    modules = {current[p] for p in (*added, *changed)} | {previous[p].module for p in (*changed, *deleted)}
    return TreeChanges(
        added=tuple(added),
        changed=tuple(changed),
        deleted=tuple(deleted),
        unchanged=unchanged,
        modules=frozenset(modules),
    )


def plan_rebuild(
    tree: SourceTree, uris: Mapping[str, str], storage_options: Mapping[str, str] | None, *, full: bool
) -> RebuildPlan:
    """Whether the extract tables at ``uris`` can be brought up to ``tree`` incrementally, and how."""
    if full:
        return RebuildPlan(incremental=False, reason="a full rebuild was asked for (--full)")
    try:
        why = _why_full(uris, storage_options, str(tree.root))
        if why is not None:
            return RebuildPlan(incremental=False, reason=why)
        previous = _previous_files(uris["source_files"], storage_options)
    except Exception as exc:  # noqa: BLE001 - an unreadable previous table means a full rebuild, said so
        return RebuildPlan(incremental=False, reason=f"previous extract tables unreadable: {exc}")
    changes = diff_tree(tree, previous)
    summary = f"{len(changes.added)} added, {len(changes.changed)} changed, {len(changes.deleted)} deleted"
    return RebuildPlan(incremental=True, reason=summary, changes=changes)


def subtree(tree: SourceTree, modules: frozenset[str]) -> SourceTree:
    """The files of ``tree`` that belong to ``modules`` (same root, same order)."""
    kept = [(f, s) for f, s in zip(tree.files, tree.sizes, strict=True) if f.module in modules]
    return SourceTree(
        root=tree.root,
        files=tuple(f for f, _ in kept),
        sizes=tuple(s for _, s in kept),
        unreadable_dirs=tree.unreadable_dirs,
    )
