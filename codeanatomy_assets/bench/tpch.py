"""TPC-H over Delta Lake: data generation, the 22 queries, and registrations to compare readers.

- :func:`generate_tpch_delta` writes the eight TPC-H tables as Delta tables of several files each, with
  ``lineitem`` clustered by ``l_shipdate`` and ``orders`` by ``o_orderdate`` so that min/max file
  statistics can prune date ranges.
- ``queries/q1.sql`` .. ``q22.sql`` are the TPC-H queries with the specification's validation
  parameters, one statement each (Q15's view is a common table expression), accepted by DataFusion 55.
- :func:`register_delta_tables` registers tables through the Delta table provider (the pipeline's
  reader); :func:`native_parquet_register` registers the *same live files* with DataFusion's native
  Parquet reader, the practical limit a Delta reader can approach.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.parquet as pq
from datafusion import SessionContext
from deltalake import DeltaTable, WriterProperties, write_deltalake

from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable

TPCH_TABLES: Final = ("customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier")
CLUSTER_KEYS: Final = {"lineitem": "l_shipdate", "orders": "o_orderdate"}
"""Columns the fact tables are sorted by before they are split into files (so file statistics prune)."""
QUERY_NAMES: Final = tuple(f"q{i}" for i in range(1, 23))
NATIVE_PARQUET_PROVIDER: Final = "datafusion.read_parquet(delta live files)"


def tpchgen_executable() -> str:
    """The ``tpchgen-cli`` command: next to the running interpreter first (a venv), then on ``PATH``."""
    beside = Path(sys.executable).parent / "tpchgen-cli"
    if beside.is_file():
        return str(beside)
    found = shutil.which("tpchgen-cli")
    if found is None:
        raise FileNotFoundError(
            "tpchgen-cli not found next to the interpreter nor on PATH (pip install tpchgen-cli)"
        )
    return found


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """The schema with ``string_view`` (``tpchgen-cli`` writes them) as ``string``, without Parquet field-id
    metadata."""
    return pa.schema(
        [
            pa.field(f.name, pa.string() if f.type == pa.string_view() else f.type, nullable=f.nullable)
            for f in schema
        ]
    )


def generate_tpch_delta(
    out_dir: str | Path,
    *,
    scale: float,
    files_per_table: int,
    row_group_rows: int | None = None,
) -> dict[str, str]:
    """Generate TPC-H at ``scale`` and write each table as a Delta table under ``out_dir/<table>``.

    Each table is split into ``files_per_table`` files (fewer when it has fewer rows), one commit per
    file, after sorting the fact tables by :data:`CLUSTER_KEYS`. Existing tables are overwritten (their
    old files stay on disk, removed in the log). Returns ``{table: uri}``.
    """
    if files_per_table < 1:
        raise ValueError(f"files_per_table must be at least 1, got {files_per_table}")
    out = Path(out_dir).resolve()
    staging = out / "_tpchgen"
    staging.mkdir(parents=True, exist_ok=True)
    command = [
        tpchgen_executable(),
        "parquet",
        "-s",
        f"{scale:g}",
        "--output-dir",
        str(staging),
        "--overwrite",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}): {completed.stderr.strip()}")
    properties = WriterProperties(max_row_group_size=row_group_rows) if row_group_rows else None
    uris: dict[str, str] = {}
    for name in TPCH_TABLES:
        table = pq.read_table(staging / f"{name}.parquet")
        table = table.cast(_plain_schema(table.schema))
        if name in CLUSTER_KEYS:
            table = table.sort_by(CLUSTER_KEYS[name])
        uri = out / name
        chunks = max(1, min(files_per_table, table.num_rows))
        for i in range(chunks):
            start, stop = i * table.num_rows // chunks, (i + 1) * table.num_rows // chunks
            part, mode = table.slice(start, stop - start), "overwrite" if i == 0 else "append"
            # deltalake's overloads type writer_properties as required; None (its default) keeps delta-rs's.
            write_deltalake(uri, part, mode=mode, writer_properties=properties)  # pyright: ignore[reportCallIssue, reportArgumentType]
        uris[name] = str(uri)
    shutil.rmtree(staging)
    return uris


def load_query(name: str | int) -> str:
    """The SQL of TPC-H query ``name`` (``"q6"`` or ``6``), comments included."""
    key = f"q{name}" if isinstance(name, int) else name.lower()
    if key not in QUERY_NAMES:
        raise KeyError(f"no TPC-H query {key!r}; expected one of q1..q22")
    return resources.files("codeanatomy_assets.bench").joinpath("queries", f"{key}.sql").read_text("utf-8")


def register_delta_tables(ctx: SessionContext, uris: Mapping[str, str]) -> dict[str, RegisteredTable]:
    """Register each table through the Delta table provider (``ctx.register_table(name, DeltaTable)``).

    Meant for tables written by :func:`generate_tpch_delta` (protocol 1/2, no table features), which the
    provider reads correctly: ``protocol_compatible`` is True by construction, not checked here.
    """
    registered: dict[str, RegisteredTable] = {}
    for name, uri in uris.items():
        table = DeltaTable(uri)
        ctx.register_table(name, table)
        registered[name] = RegisteredTable(
            dataset=name,
            uri=uri,
            provider_mode=ProviderMode.DELTA_TABLE_PROVIDER,
            provider_class=f"{type(table).__module__}.{type(table).__qualname__}",
            protocol_compatible=True,
            version=table.version(),
        )
    return registered


def native_parquet_register(
    ctx: SessionContext,
    name: str,
    uri: str,
    *,
    version: int | None = None,
    storage_options: Mapping[str, str] | None = None,
    file_pruning_predicate: str | None = None,
) -> tuple[str, ...]:
    """Register the Delta table's live Parquet files with DataFusion's native reader, as view ``name``.

    The files come from the Delta log (``DeltaTable.file_uris()``), never from listing the folder, so
    removed files are not read. With ``file_pruning_predicate`` only Delta's candidate files
    are registered. Exact only where the protocol lets the Parquet files be read as they are:
    no deletion vectors, no column mapping, and no partition columns (those live in the log, not in the
    files), which raises ``ValueError``. Returns the registered file URIs.
    """
    table = DeltaTable(
        uri, version=version, storage_options=dict(storage_options) if storage_options else None
    )
    if table.metadata().partition_columns:
        raise ValueError(f"{uri}: partitioned tables keep partition values in the log; not readable natively")
    files = tuple(table.file_uris(file_pruning_predicate=file_pruning_predicate))
    if not files:
        # pyarrow-stubs lacks the Arrow PyCapsule overload (a deltalake Schema exports __arrow_c_schema__).
        schema = pa.schema(table.schema())  # pyright: ignore[reportArgumentType]
        ctx.register_view(name, ctx.from_arrow(schema.empty_table()))
        return files
    frame = ctx.read_parquet(files[0])
    for path in files[1:]:
        frame = frame.union(ctx.read_parquet(path))
    ctx.register_view(name, frame)
    return files


def register_native_tables(ctx: SessionContext, uris: Mapping[str, str]) -> dict[str, RegisteredTable]:
    """:func:`native_parquet_register` for every table; the records keep the Delta table's uri."""
    registered: dict[str, RegisteredTable] = {}
    for name, uri in uris.items():
        native_parquet_register(ctx, name, uri)
        registered[name] = RegisteredTable(
            dataset=name,
            uri=uri,
            provider_mode=ProviderMode.OTHER,
            provider_class=NATIVE_PARQUET_PROVIDER,
            protocol_compatible=True,
            version=DeltaTable(uri).version(),
        )
    return registered
