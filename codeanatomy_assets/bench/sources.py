"""Source trees the benchmark builds and extracts: the whole standard library or a copy of some of it.

A build analyses a tree in place, so a subset is a real directory: the chosen standard-library packages
are copied under a work directory (``__pycache__`` and ``site-packages`` left out). The built-in spec's
``package_hotspots`` plan ranks the tree's packages, so it has rows on every subset.

>>> SourceSelection.subset(("json",)).describe()
'stdlib packages: json'
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from codeanatomy_assets.extract.tree import discover, stdlib_source

QUICK_PACKAGES: Final = (
    "asyncio",
    "collections",
    "concurrent",
    "email",
    "http",
    "importlib",
    "json",
    "logging",
    "urllib",
)
"""About 110 files: enough for every plan of the built-in spec to have rows."""

MEDIUM_PACKAGES: Final = (
    *QUICK_PACKAGES,
    "ctypes",
    "multiprocessing",
    "tkinter",
    "unittest",
    "xml",
    "encodings",
    "lib2to3",
    "idlelib",
)
"""About 600 files: a tree whose build is not dominated by Dagster's fixed costs."""

TINY_PACKAGES: Final = ("json",)
"""Five files: for tests of the harness."""

_IGNORED: Final = shutil.ignore_patterns("__pycache__", "site-packages", "*.pyc")


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSelection:
    """Which tree to analyse: the whole standard library (``packages`` empty) or some of its packages."""

    packages: tuple[str, ...] = ()

    @classmethod
    def whole_stdlib(cls) -> SourceSelection:
        """The running interpreter's standard library, analysed in place."""
        return cls(packages=())

    @classmethod
    def subset(cls, packages: tuple[str, ...]) -> SourceSelection:
        """A copy of these standard-library packages."""
        return cls(packages=tuple(packages))

    def describe(self) -> str:
        """One line for the report."""
        return "stdlib (whole)" if not self.packages else "stdlib packages: " + ", ".join(self.packages)

    def materialize(self, work_dir: Path) -> Path:
        """The directory to analyse: the stdlib itself, or a fresh copy of the packages under ``work_dir``."""
        if not self.packages:
            return stdlib_source()
        digest = hashlib.sha256("\n".join(self.packages).encode()).hexdigest()[:12]
        target = work_dir / f"stdlib-{len(self.packages)}-packages-{digest}"
        if target.exists():
            return target
        std = stdlib_source()
        for package in self.packages:
            source = std / package
            if source.is_dir():
                shutil.copytree(source, target / package, ignore=_IGNORED)
            elif source.with_suffix(".py").is_file():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source.with_suffix(".py"), target / f"{package}.py")
            else:
                raise FileNotFoundError(f"no stdlib package or module {package!r} under {std}")
        return target


def count_files(root: Path) -> int:
    """The number of ``.py`` files a build of ``root`` analyses."""
    return len(discover(root).files)
