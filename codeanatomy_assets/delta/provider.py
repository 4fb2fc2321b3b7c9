"""Provider modes: which reader serves a Delta table inside DataFusion.

Shared vocabulary between registration (:mod:`codeanatomy_assets.delta.registration`), plan telemetry
(:mod:`codeanatomy_assets.engine.plan`) and the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class ProviderMode(StrEnum):
    """How a dataset is served to DataFusion."""

    DELTA_PRUNED_PARQUET = "delta_pruned_parquet"
    """The pinned snapshot's live files, read by DataFusion's own Parquet reader (:mod:`~codeanatomy_assets.
    delta.pruned`); each plan reads only the files Delta's log statistics keep for its predicates. Exact
    only where the files can be read as they are (no deletion vectors in use, no column mapping)."""
    DELTA_TABLE_PROVIDER = "delta_table_provider"
    """``SessionContext.register_table(name, DeltaTable)`` across DataFusion's FFI."""
    PYARROW_DATASET = "pyarrow_dataset"
    """``DeltaTable.to_pyarrow_dataset()`` registered with ``register_dataset`` (a fallback)."""
    DELTA_SCAN_STREAM = "delta_scan_stream"
    """deltalake's own engine (``DeltaTable.scan``) materialized as Arrow (applies DVs, column mapping)."""
    OTHER = "other"
    NONE = "none"
    """No provider can read the table correctly: registration fails."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisteredTable:
    """What a plan needs to know about a dataset registered in its session."""

    dataset: str
    uri: str
    provider_mode: ProviderMode
    provider_class: str
    protocol_compatible: bool
    version: int | None = None
    storage_options: Mapping[str, str] = field(default_factory=dict[str, str])
    fallback_reason: str | None = None
