"""The source tree: which files an extraction analyses, their module names, and the work chunks.

Every regular file or symlink whose name ends in ``.py`` is listed, whatever it holds (a file that cannot
be read or parsed still gets its ``source_files`` row). Directories named in ``exclude_dirs``
(by default ``site-packages`` and ``__pycache__``) are skipped, and symlinks to directories are not
followed (a link loop cannot make the walk endless). A subdirectory that cannot be listed is reported in
:attr:`SourceTree.unreadable_dirs`; the root itself raises :class:`SourceTreeError`.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from codeanatomy_assets.errors import SourceTreeError
from codeanatomy_assets.extract.analysis import SourceFile

DEFAULT_EXCLUDED_DIRS: Final = frozenset({"site-packages", "__pycache__"})


def stdlib_source() -> Path:
    """The running interpreter's standard library (its ``site-packages`` is excluded by the walk)."""
    return Path(sysconfig.get_paths()["stdlib"])


def module_name(rel_path: str) -> str:
    """The dotted module of a ``.py`` path relative to the root.

    >>> module_name("shop/cart.py"), module_name("shop/__init__.py"), module_name("app.py")
    ('shop.cart', 'shop', 'app')
    """
    parts = rel_path[:-3].split("/")
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def package_name(rel_path: str) -> str:
    """The top-level package of a ``.py`` path: its first directory, or the module itself at the root.

    >>> package_name("shop/payments/card.py"), package_name("app.py"), package_name("config-3.11/x.py")
    ('shop', 'app', 'config-3.11')
    """
    first, _, rest = rel_path.partition("/")
    return first if rest else first[:-3]


@dataclass(frozen=True, slots=True, kw_only=True)
class UnreadableDir:
    """A directory under the root that could not be listed: its files are unknown."""

    path: str
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceTree:
    """The files of a tree in dataset order (package, module, path), with their sizes for chunking."""

    root: Path
    files: tuple[SourceFile, ...]
    sizes: tuple[int, ...]
    unreadable_dirs: tuple[UnreadableDir, ...] = ()

    def chunks(self, count: int) -> Iterator[tuple[SourceFile, ...]]:
        """About ``count`` runs of consecutive files of similar total size (at least one file each)."""
        target = max(sum(self.sizes) / max(count, 1), 1.0)
        start, acc = 0, 0
        for index, size in enumerate(self.sizes):
            acc += size
            if acc >= target:
                yield self.files[start : index + 1]
                start, acc = index + 1, 0
        if start < len(self.files):
            yield self.files[start:]


def discover(source: Path, *, exclude_dirs: frozenset[str] = DEFAULT_EXCLUDED_DIRS) -> SourceTree:
    """The ``.py`` files under ``source``; raises :class:`SourceTreeError` if there is nothing to analyse."""
    shown = str(source)
    if not source.exists():
        raise SourceTreeError("source tree does not exist", path=shown)
    if not source.is_dir():
        raise SourceTreeError("source tree is not a directory", path=shown)
    root = source.resolve()
    found, unreadable = _walk(root, shown, exclude_dirs)
    if not found:
        raise SourceTreeError("source tree holds no Python files (*.py)", path=shown)
    keyed = sorted((package_name(rel), module_name(rel), rel, size) for rel, size in found)
    files = tuple(
        SourceFile(path=rel, module=module, package=package, is_package=rel.endswith("__init__.py"))
        for package, module, rel, _ in keyed
    )
    return SourceTree(
        root=root,
        files=files,
        sizes=tuple(size for *_, size in keyed),
        unreadable_dirs=tuple(sorted(unreadable, key=lambda d: d.path)),
    )


def _walk(
    root: Path, shown: str, exclude_dirs: frozenset[str]
) -> tuple[list[tuple[str, int]], list[UnreadableDir]]:
    """The ``(path, size)`` of the ``.py`` files under ``root``, and the directories that could not be
    listed."""
    found: list[tuple[str, int]] = []
    unreadable: list[UnreadableDir] = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        for entry in _listing(root, rel_dir, shown, unreadable):
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if _is_real_dir(entry):
                if entry.name not in exclude_dirs:
                    pending.append(rel)
            elif entry.name.endswith(".py") and not _is_dir_link(entry):
                found.append((rel, _size(entry)))
    return found, unreadable


def _listing(root: Path, rel_dir: str, shown: str, unreadable: list[UnreadableDir]) -> list[os.DirEntry[str]]:
    """The entries of one directory. One that cannot be listed is added to ``unreadable`` (no entries);
    the root itself raises :class:`SourceTreeError`."""
    try:
        with os.scandir(root / rel_dir if rel_dir else root) as entries:
            return list(entries)
    except OSError as exc:
        if not rel_dir:
            raise SourceTreeError(f"source tree cannot be read: {exc.strerror or exc}", path=shown) from exc
        unreadable.append(UnreadableDir(path=rel_dir, error=f"{type(exc).__name__}: {exc.strerror or exc}"))
        return []


def _is_real_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:  # vanished between listing and checking: treat as a file, the worker records it
        return False


def _is_dir_link(entry: os.DirEntry[str]) -> bool:
    """A symlink to a directory named ``*.py``: not a source file, and not followed."""
    try:
        return entry.is_symlink() and entry.is_dir()
    except OSError:  # a looping or dangling link is listed as a file and recorded by the worker
        return False


def _size(entry: os.DirEntry[str]) -> int:
    """The size used to balance chunks only (the worker stats the file itself and records failures)."""
    try:
        return entry.stat(follow_symlinks=False).st_size
    except OSError:
        return 0
