"""The names of the engines case: its engines, the product's plans, its child jobs, a query's tables."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final

from codeanatomy_assets.bench.tpch import TPCH_TABLES

NATIVE: Final = "native"
NATIVE_WARM: Final = "native_warm"
QUERYBUILDER: Final = "deltalake_querybuilder"
POLARS: Final = "polars_sql"
DUCKDB: Final = "duckdb_read_parquet"
DELTA_PROVIDER: Final = "datafusion_delta_provider"
PEERS: Final = (QUERYBUILDER, POLARS, DUCKDB, DELTA_PROVIDER)
CHILD_ENGINES: Final = (NATIVE, NATIVE_WARM, *PEERS)
"""The engines timed in child processes, each in a process of its own per round."""
PRODUCT: Final = "product_build"
PRODUCT_NO_CAPTURE: Final = "product_build_no_capture"
PRODUCT_VARIANTS: Final = {PRODUCT: True, PRODUCT_NO_CAPTURE: False}
"""Each product variant and whether it captures diagnostics."""
ENGINES: Final = (*CHILD_ENGINES, *PRODUCT_VARIANTS)
DEFAULTS: Final = "defaults"
"""The ablation's baseline: the session's default settings."""
PLAN_PREFIX: Final = "tpch_"
_COMMENT: Final = re.compile(r"--[^\n]*")


class JobKind(StrEnum):
    """What a child process runs: one engine, or one variant of the settings ablation."""

    ENGINE = "engine"
    ABLATION = "ablation"


def query_tables(sql: str) -> tuple[str, ...]:
    """The TPC-H tables ``sql`` names (outside ``--`` comments), sorted.

    >>> query_tables("select 1 from lineitem, orders -- not part")
    ('lineitem', 'orders')
    """
    words = set(re.findall(r"[a-z_][a-z0-9_]*", _COMMENT.sub(" ", sql).lower()))
    return tuple(sorted(words & set(TPCH_TABLES)))


def plan_name(query: str) -> str:
    """The product plan that runs ``query`` (``q6`` -> ``tpch_q6``)."""
    return f"{PLAN_PREFIX}{query}"
