"""The four extract datasets: one pyarrow schema constant each, and their assembly from worker columns.

Every dataset carries ``module`` (dotted, from the path: ``shop/cart.py`` -> ``shop.cart``,
``shop/__init__.py`` -> ``shop``) and ``package``, the top-level import name: the first directory of
the path (``shop/cart.py`` -> ``shop``). A top-level module is its own package (``os.py`` -> ``os``), so
``package`` never lumps unrelated top-level modules together, a package-level dependency graph is
``imports.package -> split_part(imported_module, '.', 1)``, and sorting by (package, module) sorts
``module`` too, which lets min/max statistics prune on either column (see :mod:`.layout`).
Line numbers are 1-based. See :mod:`codeanatomy_assets.extract.analysis` for what each row means.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import pyarrow as pa

from codeanatomy_assets.extract.analysis import (
    CALL_COLUMNS,
    IMPORT_COLUMNS,
    SOURCE_FILE_COLUMNS,
    SYMBOL_COLUMNS,
    ChunkColumns,
)

_MODULE: Final = pa.field("module", pa.string(), nullable=False)
_PACKAGE: Final = pa.field("package", pa.string(), nullable=False)

SOURCE_FILES_SCHEMA: Final = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),  # relative to the tree root, "/" separators
        _MODULE,
        _PACKAGE,
        pa.field("bytes", pa.int64()),  # null when the file could not be stat'ed
        pa.field("lines", pa.int64()),  # null when the file was not read
        pa.field("content_hash", pa.string()),  # sha256 hex of the bytes; null when not read
        pa.field("parse_status", pa.string(), nullable=False),  # a ParseStatus value
        pa.field("error", pa.string()),  # "line N: message"; null when ok
    ]
)
SYMBOLS_SCHEMA: Final = pa.schema(
    [
        _MODULE,
        _PACKAGE,
        pa.field("qualname", pa.string(), nullable=False),  # PEP 3155: C.m, f.<locals>.g
        pa.field("name", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # class|function|async_function|method|async_method
        pa.field("lineno", pa.int32(), nullable=False),
        pa.field("end_lineno", pa.int32()),
        pa.field("decorators", pa.list_(pa.string()), nullable=False),  # dotted names, no call arguments
        pa.field("arg_count", pa.int32()),  # every parameter; null for classes
        pa.field("complexity", pa.int32(), nullable=False),  # 1 + decision points (McCabe-like)
    ]
)
IMPORTS_SCHEMA: Final = pa.schema(
    [
        _MODULE,
        _PACKAGE,
        pa.field("imported_module", pa.string(), nullable=False),  # absolute; relative ones resolved
        pa.field("imported_name", pa.string()),  # null for `import a.b`; "*" for star imports
        pa.field("lineno", pa.int32(), nullable=False),
        pa.field("level", pa.int32(), nullable=False),  # leading dots of a relative import, else 0
    ]
)
CALLS_SCHEMA: Final = pa.schema(
    [
        _MODULE,
        _PACKAGE,
        pa.field("enclosing_symbol", pa.string(), nullable=False),  # qualname or "<module>"
        pa.field("callee", pa.string(), nullable=False),  # dotted text or "<complex>"
        pa.field("lineno", pa.int32(), nullable=False),
    ]
)

SCHEMAS: Final[Mapping[str, pa.Schema]] = {
    "source_files": SOURCE_FILES_SCHEMA,
    "symbols": SYMBOLS_SCHEMA,
    "imports": IMPORTS_SCHEMA,
    "calls": CALLS_SCHEMA,
}
DATASET_NAMES: Final = tuple(SCHEMAS)

# The worker's column order; a test keeps it equal to the schemas'.
COLUMNS: Final[Mapping[str, Sequence[str]]] = {
    "source_files": SOURCE_FILE_COLUMNS,
    "symbols": SYMBOL_COLUMNS,
    "imports": IMPORT_COLUMNS,
    "calls": CALL_COLUMNS,
}


def chunk_batches(chunk: ChunkColumns) -> dict[str, pa.RecordBatch]:
    """One record batch per dataset from a worker's column lists."""
    return {
        name: pa.RecordBatch.from_pydict(getattr(chunk, name), schema=schema)
        for name, schema in SCHEMAS.items()
    }


def assemble(batches: Iterable[Mapping[str, pa.RecordBatch]]) -> dict[str, pa.Table]:
    """The four tables from per-chunk batches, in chunk order (one table chunk per work chunk)."""
    collected: dict[str, list[pa.RecordBatch]] = {name: [] for name in DATASET_NAMES}
    for chunk in batches:
        for name in DATASET_NAMES:
            collected[name].append(chunk[name])
    return {name: pa.Table.from_batches(collected[name], schema=SCHEMAS[name]) for name in DATASET_NAMES}
