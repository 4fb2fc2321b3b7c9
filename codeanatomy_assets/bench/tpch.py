"""TPC-H over Delta Lake: data generation, the 22 queries, and registrations to compare readers.

- :func:`generate_tpch_delta` writes the eight TPC-H tables as Delta tables of several files each, with
  ``lineitem`` clustered by ``l_shipdate`` and ``orders`` by ``o_orderdate`` so that min/max file
  statistics can prune date ranges; :func:`cached_tpch` keeps it under a cache folder, and
  :class:`TpchSettings` (the data and queries of a TPC-H case) points at it.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.parquet as pq
from datafusion import DataFrame, SessionContext
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


def _run_tpchgen(staging: Path, scale: float) -> None:
    """``tpchgen-cli`` writes the eight tables as Parquet under ``staging``."""
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


def _write_in_chunks(
    uri: Path, table: pa.Table, files_per_table: int, properties: WriterProperties | None
) -> None:
    """``table`` as a Delta table of up to ``files_per_table`` files, a commit each (the first overwrites)."""
    chunks = max(1, min(files_per_table, table.num_rows))
    for i in range(chunks):
        start, stop = i * table.num_rows // chunks, (i + 1) * table.num_rows // chunks
        part, mode = table.slice(start, stop - start), "overwrite" if i == 0 else "append"
        # deltalake's overloads type writer_properties as required; None (its default) keeps delta-rs's.
        write_deltalake(uri, part, mode=mode, writer_properties=properties)  # pyright: ignore[reportCallIssue, reportArgumentType]


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
    _run_tpchgen(staging, scale)
    properties = WriterProperties(max_row_group_size=row_group_rows) if row_group_rows else None
    uris: dict[str, str] = {}
    for name in TPCH_TABLES:
        table = pq.read_table(staging / f"{name}.parquet")
        table = table.cast(_plain_schema(table.schema))
        if name in CLUSTER_KEYS:
            table = table.sort_by(CLUSTER_KEYS[name])
        _write_in_chunks(out / name, table, files_per_table, properties)
        uris[name] = str(out / name)
    shutil.rmtree(staging)
    return uris


def cached_tpch(cache_dir: Path, *, scale: float, files_per_table: int) -> tuple[dict[str, str], bool]:
    """TPC-H as Delta tables under the cache, generated on first use; ``(uris, generated_now)``."""
    root = Path(cache_dir).expanduser() / "tpch" / f"sf{scale:g}-files{files_per_table}"
    ready = root / "_READY"
    generated = not ready.exists()
    if generated:
        generate_tpch_delta(root, scale=scale, files_per_table=files_per_table)
        ready.write_text("generated by codeanatomy bench\n", encoding="utf-8")
    return {name: str(root / name) for name in TPCH_TABLES}, generated


@dataclass(frozen=True, slots=True, kw_only=True)
class TpchSettings:
    """What the TPC-H cases share: the data (scale, files per table, cache) and the queries run."""

    scale: float = 1.0
    files_per_table: int = 24
    queries: tuple[str, ...] = QUERY_NAMES
    cache_dir: str = "~/.cache/codeanatomy-bench"
    """Expanded when used (:func:`cached_tpch`), not at import."""

    def cached_data(self) -> tuple[dict[str, str], bool]:
        """:func:`cached_tpch` of this data: ``(uris, generated_now)``."""
        return cached_tpch(Path(self.cache_dir), scale=self.scale, files_per_table=self.files_per_table)


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
    ctx.register_view(name, _union_of_files(ctx, table, files))
    return files


def _union_of_files(ctx: SessionContext, table: DeltaTable, files: Sequence[str]) -> DataFrame:
    """One ``read_parquet`` per file, unioned; an empty frame of the table's schema when there is none."""
    if not files:
        # pyarrow-stubs lacks the Arrow PyCapsule overload (a deltalake Schema exports __arrow_c_schema__).
        schema = pa.schema(table.schema())  # pyright: ignore[reportArgumentType]
        return ctx.from_arrow(schema.empty_table())
    frame = ctx.read_parquet(files[0])
    for path in files[1:]:
        frame = frame.union(ctx.read_parquet(path))
    return frame


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
