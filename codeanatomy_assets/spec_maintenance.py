"""The spec's optional ``[maintenance]`` table: layout thresholds for the pipeline's own output tables, and
the switch of the maintenance job and sensor that treat them (``defs/maintenance.py``).

Example::

    [maintenance]
    small_file_mb = 8               # a live file under this size is small
    small_file_warn_count = 32      # compact from this many small files that share a partition
    checkpoint_lag_commits = 100    # checkpoint past this many commits (default: the table's interval)
    partition_skew_ratio = 10
    deletion_vector_warn_share = 0.1
    sensor_interval_s = 3600        # how often the sensor reads the output tables' layout

Without the table the datasets still carry the layout check (with the default thresholds); the maintenance
job and sensor exist only with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from codeanatomy_assets.delta.layout import LayoutThresholds
from codeanatomy_assets.errors import ConfigError

_MIB: Final = 1024 * 1024
_POSITIVE_NUMBERS: Final = ("small_file_mb", "partition_skew_ratio", "deletion_vector_warn_share")
_POSITIVE_INTEGERS: Final = ("small_file_warn_count", "checkpoint_lag_commits", "sensor_interval_s")
KEYS: Final = frozenset((*_POSITIVE_NUMBERS, *_POSITIVE_INTEGERS))


@dataclass(frozen=True, slots=True)
class MaintenanceSpec:
    """Thresholds over the pipeline's own output tables and how often the sensor looks at them."""

    thresholds: LayoutThresholds = field(default_factory=LayoutThresholds)
    sensor_interval_s: int = 3600


def _positive(body: Mapping[str, Any], key: str, source: str, *, integer: bool) -> float | int | None:
    value = body.get(key)
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"must be {kind}", source=source, key=f"maintenance.{key}")
    return value


def parse_maintenance(doc: Mapping[str, Any], source: str) -> MaintenanceSpec | None:
    """The ``[maintenance]`` table of a spec document (``None`` when absent)."""
    if "maintenance" not in doc:
        return None
    body = doc["maintenance"]
    if not isinstance(body, Mapping):
        raise ConfigError("must be a table", source=source, key="maintenance")
    unknown = sorted(set(body) - KEYS)
    if unknown:
        allowed = ", ".join(sorted(KEYS))
        raise ConfigError(
            f"unknown key {unknown[0]!r} (allowed: {allowed})", source=source, key="maintenance"
        )
    values = {k: _positive(body, k, source, integer=k in _POSITIVE_INTEGERS) for k in KEYS}
    return MaintenanceSpec(
        thresholds=_thresholds(values), sensor_interval_s=int(values["sensor_interval_s"] or 3600)
    )


def _thresholds(values: Mapping[str, float | int | None]) -> LayoutThresholds:
    defaults = LayoutThresholds()
    small_mb = values["small_file_mb"]
    lag = values["checkpoint_lag_commits"]
    return LayoutThresholds(
        small_file_bytes=int(small_mb * _MIB) if small_mb else defaults.small_file_bytes,
        small_file_warn_count=int(values["small_file_warn_count"] or defaults.small_file_warn_count),
        partition_skew_ratio=float(values["partition_skew_ratio"] or defaults.partition_skew_ratio),
        deletion_vector_warn_share=float(
            values["deletion_vector_warn_share"] or defaults.deletion_vector_warn_share
        ),
        checkpoint_lag_commits=int(lag) if lag else None,
    )
