"""Lazy public exports (PEP 562) shared by the package ``__init__`` modules.

A package declares which submodule holds each public name; the name is imported on first access, so
importing the package stays cheap (``codeanatomy --help``, the Dagster code location).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``homes`` maps a public name to its submodule."""

    def load(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        vars(sys.modules[package])[name] = value  # later accesses skip this function
        return value

    def listing() -> list[str]:
        return sorted(homes)  # the public names: what dir() of a package with __all__ should show

    return load, listing
