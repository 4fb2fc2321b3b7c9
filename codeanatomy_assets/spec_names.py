"""The names a spec may give its datasets and plans.

Names become Dagster asset keys, Delta folder names and SQL identifiers: they keep to one safe shape, are
lower case (unquoted SQL identifiers fold to lower case) and must plan where a table name goes.
"""

from __future__ import annotations

import functools
import re
from typing import Final

from codeanatomy_assets.errors import ConfigError

_NAME_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_SQL_KEYWORDS: Final = frozenset(
    [
        "select",
        "from",
        "where",
        "group",
        "by",
        "order",
        "having",
        "limit",
        "join",
        "on",
        "as",
        "and",
        "or",
        "not",
        "in",
        "is",
        "null",
        "union",
        "all",
        "table",
        "with",
        "values",
        "insert",
        "update",
        "delete",
        "create",
        "drop",
        "case",
        "when",
        "then",
        "else",
        "end",
        "distinct",
    ]
)
# Where a table name goes in a query: DataFusion's parser takes some keywords there but not others (measured:
# `user`, `true`, `struct` are refused as qualifiers, `table`, `unnest`, `lateral` everywhere).
_NAME_PROBES: Final = (
    "SELECT * FROM {n}",
    "SELECT {n}.x FROM {n}",
    'SELECT * FROM {n} JOIN "other table" ON {n}.x = "other table".x',
    'SELECT * FROM "other table" JOIN {n} ON "other table".x = {n}.x',
)


def check_name(name: str, source: str, key: str) -> None:
    """Raise :class:`ConfigError` (naming ``source`` and ``key``) when ``name`` cannot be used."""
    problem = name_problem(name)
    if problem is not None:
        raise ConfigError(problem, source=source, key=key)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a dataset or plan (``None``: it can).

    >>> name_problem("trips") is None, name_problem("Trips")
    (True, 'names must be lower case: unquoted SQL identifiers fold to lower case; use trips')
    """
    if not _NAME_RE.match(name):
        return (
            "names must start with a letter and hold only letters, digits and '_' (at most 63): "
            "they become Dagster asset keys, Delta folder names and SQL identifiers"
        )
    if name != name.lower():
        return f"names must be lower case: unquoted SQL identifiers fold to lower case; use {name.lower()}"
    if name in _SQL_KEYWORDS:
        return "is an SQL keyword; choose another name"
    unplannable = _unreferenceable(name)
    if unplannable is not None:
        return (
            f"is read as an SQL keyword where a table name goes ({unplannable!r} does not plan); "
            "choose another name"
        )
    return None


@functools.lru_cache(maxsize=1024)
def _unreferenceable(name: str) -> str | None:
    """The first probe query that does not plan with ``name`` as an unquoted table name (``None``: all do)."""
    import datafusion
    import pyarrow as pa

    ctx = datafusion.SessionContext()
    for table in (name, "other table"):  # no declared name holds a space
        ctx.register_record_batches(f'"{table}"', [pa.table({"x": [1]}).to_batches()])
    for probe in _NAME_PROBES:
        query = probe.format(n=name)
        try:
            ctx.sql(query).logical_plan()
        except Exception:  # noqa: BLE001 - parse or plan error: the name cannot be referenced this way
            return query
    return None
