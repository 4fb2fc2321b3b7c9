"""The timed units of the child processes, one runner per engine: each takes the SQL and the tables it names.

``native`` (and every ablation variant) is DataFusion's listing table over the folders of
:mod:`~codeanatomy_assets.bench.engines.native_sources`; the peers read the Delta tables by uri.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from codeanatomy_assets.bench.engines.names import (
    DELTA_PROVIDER,
    DUCKDB,
    NATIVE,
    NATIVE_WARM,
    POLARS,
    QUERYBUILDER,
)

Runner = Callable[[str, Sequence[str]], pa.Table]


def _native_session(paths: Mapping[str, str], names: Iterable[str], settings: Mapping[str, str]) -> Any:
    from datafusion import SessionConfig, SessionContext

    config = SessionConfig()
    for key, value in settings.items():
        config = config.set(key, value)
    ctx = SessionContext(config)
    for name in names:
        ctx.register_parquet(name, paths[name])
    return ctx


def native_runner(paths: Mapping[str, str], settings: Mapping[str, str] | None = None) -> Runner:
    """Fresh session, ``register_parquet`` of each named table, the query collected to Arrow."""
    options = dict(settings or {})
    return lambda sql, names: _native_session(paths, names, options).sql(sql).to_arrow_table()


def native_warm_runner(paths: Mapping[str, str]) -> Runner:
    """One session with every table registered once (outside any timing); only the query is timed."""
    ctx = _native_session(paths, paths, {})
    return lambda sql, names: ctx.sql(sql).to_arrow_table()


def querybuilder_runner(uris: Mapping[str, str]) -> Runner:
    """deltalake's ``QueryBuilder`` over ``DeltaTable`` s opened in the timing."""

    def run(sql: str, names: Sequence[str]) -> pa.Table:
        from deltalake import QueryBuilder

        builder = QueryBuilder()
        for name in names:
            builder.register(name, DeltaTable(uris[name]))
        return pa.table(builder.execute(sql).read_all())

    return run


def polars_runner(uris: Mapping[str, str]) -> Runner:
    """polars ``scan_delta`` frames in a ``SQLContext``, collected."""

    def run(sql: str, names: Sequence[str]) -> pa.Table:
        import polars as pl

        context = pl.SQLContext({name: pl.scan_delta(uris[name]) for name in names})
        return context.execute(sql).collect().to_arrow()

    return run


def duckdb_runner(uris: Mapping[str, str]) -> Runner:
    """DuckDB views over ``read_parquet`` of the live files (exact: the same check as ``native``)."""

    def run(sql: str, names: Sequence[str]) -> pa.Table:
        import duckdb

        con = duckdb.connect()
        try:
            for name in names:
                files = ", ".join(_quoted(f) for f in DeltaTable(uris[name]).file_uris())
                con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet([{files}])')
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()

    return run


def _quoted(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def delta_provider_runner(uris: Mapping[str, str]) -> Runner:
    """DataFusion with deltalake's table provider (``ctx.register_table(name, DeltaTable)``)."""

    def run(sql: str, names: Sequence[str]) -> pa.Table:
        from datafusion import SessionContext

        ctx = SessionContext()
        for name in names:
            ctx.register_table(name, DeltaTable(uris[name]))
        return ctx.sql(sql).to_arrow_table()

    return run


def engine_runner(engine: str, paths: Mapping[str, str], uris: Mapping[str, str]) -> Runner:
    """The runner of ``engine``: ``paths`` are the native folders, ``uris`` the Delta tables."""
    makers: dict[str, Callable[[], Runner]] = {
        NATIVE: lambda: native_runner(paths),
        NATIVE_WARM: lambda: native_warm_runner(paths),
        QUERYBUILDER: lambda: querybuilder_runner(uris),
        POLARS: lambda: polars_runner(uris),
        DUCKDB: lambda: duckdb_runner(uris),
        DELTA_PROVIDER: lambda: delta_provider_runner(uris),
    }
    return makers[engine]()
