"""The extraction stage: a Python source tree analysed with :mod:`ast` into four Delta datasets.

>>> from codeanatomy_assets.extract import extract_tree, write_datasets
>>> result = extract_tree(source, run_id=run_id, sink=sink)          # doctest: +SKIP
>>> uris = write_datasets(result, home.lake)                         # doctest: +SKIP

The names below load on first use: the pool's worker processes import only
:mod:`codeanatomy_assets.extract.analysis` (standard library only), not pyarrow or deltalake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from codeanatomy_assets.exports import lazy_exports

if TYPE_CHECKING:
    from codeanatomy_assets.extract.analysis import ParseStatus
    from codeanatomy_assets.extract.layout import FileCounts, LayoutPolicy, file_counts, write_datasets
    from codeanatomy_assets.extract.runner import (
        ExtractResult,
        ExtractStats,
        extract_tree,
    )
    from codeanatomy_assets.extract.tables import (
        CALLS_SCHEMA,
        DATASET_NAMES,
        IMPORTS_SCHEMA,
        SCHEMAS,
        SOURCE_FILES_SCHEMA,
        SYMBOLS_SCHEMA,
    )
    from codeanatomy_assets.extract.tree import stdlib_source

__all__ = [
    "CALLS_SCHEMA",
    "DATASET_NAMES",
    "IMPORTS_SCHEMA",
    "SCHEMAS",
    "SOURCE_FILES_SCHEMA",
    "SYMBOLS_SCHEMA",
    "ExtractResult",
    "ExtractStats",
    "FileCounts",
    "LayoutPolicy",
    "ParseStatus",
    "extract_tree",
    "file_counts",
    "stdlib_source",
    "write_datasets",
]

_HOMES: Final = {
    "ParseStatus": "analysis",
    "FileCounts": "layout",
    "LayoutPolicy": "layout",
    "file_counts": "layout",
    "write_datasets": "layout",
    "ExtractResult": "runner",
    "ExtractStats": "runner",
    "extract_tree": "runner",
    "CALLS_SCHEMA": "tables",
    "DATASET_NAMES": "tables",
    "IMPORTS_SCHEMA": "tables",
    "SCHEMAS": "tables",
    "SOURCE_FILES_SCHEMA": "tables",
    "SYMBOLS_SCHEMA": "tables",
    "stdlib_source": "tree",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
