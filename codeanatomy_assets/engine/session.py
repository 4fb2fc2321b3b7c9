"""DataFusion sessions of a build: a bounded memory pool that spills to disk, and the engine options.

Every :class:`~datafusion.SessionContext` a build creates comes from :func:`new_session`. Without a
runtime, DataFusion's memory is unbounded (a cross join over a 1.1M-row table grew to 8 GB in 45 s), so
each session gets:

- a *fair spill pool*: the operators that can spill (sorts, aggregations, repartitions) share it and
  write to disk when their share is used; an operator that cannot spill (the build side of a join) fails
  with DataFusion's ``Resources exhausted`` error instead of growing without bound;
- a disk manager that spills under ``spill_dir`` (``<home>/spill`` in a build), not the system's ``/tmp``;
- ``target_partitions`` and DataFusion options (:data:`DEFAULT_OPTIONS`, overridden by the user's).

``memory_limit`` is the most one plan may hold: three quarters go to DataFusion's pool
(:data:`OPERATOR_SHARE`), one quarter to the plan's result, which is collected in memory until it is
written as Delta (:func:`result_limit`; :mod:`codeanatomy_assets.engine.drain` enforces it). Without a
limit, :data:`DEFAULT_MEMORY_FRACTION` of the machine's memory (its cgroup limit when lower) is used,
read when the session is created.

>>> parse_size("2GB"), parse_size("512MiB"), parse_size(1024)
(2147483648, 536870912, 1024)
>>> format_size(3 * 2**30 // 2)
'1.5 GiB'
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

from datafusion import RuntimeEnvBuilder, SessionConfig, SessionContext

from codeanatomy_assets.allocator import allocator_settings
from codeanatomy_assets.errors import ConfigError

DEFAULT_MEMORY_FRACTION: Final = 0.5
"""Share of the machine's memory a build's plans may use when no ``memory_limit`` is given."""
OPERATOR_SHARE: Final = 0.75
"""Share of ``memory_limit`` given to DataFusion's memory pool; the rest bounds the collected result."""
SPILL_FOLDER: Final = "spill"
"""Folder under the project home where DataFusion spills."""
DEFAULT_OPTIONS: Final[Mapping[str, str]] = MappingProxyType({})
"""DataFusion options every build session gets unless the spec's ``[engine.options]`` overrides them.

Only measured defaults belong here (``docs/benchmarks.md`` says which and why). Empty: in the settings
ablation of the ``engines`` bench (TPC-H SF 1, quiet machine) no setting beat DataFusion's defaults by
more than the spread between runs, and ``collect_statistics=false`` or ``target_partitions=1`` cost
about 1.3x."""

_SIZE_RE: Final = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_PERCENT_RE: Final = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*%\s*$")
_UNITS: Final = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_CGROUP_LIMITS: Final = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
_RESERVED_PREFIX: Final = "datafusion.runtime."


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings:
    """How the sessions of a build are configured (the spec's ``[engine]`` table, flags over it)."""

    memory_limit: int | None = None
    """Bytes one plan may hold; ``None``: :data:`DEFAULT_MEMORY_FRACTION` of the machine's memory."""
    spill_dir: Path | None = None
    """Where DataFusion spills; ``None``: the system's temporary directory."""
    target_partitions: int | None = None
    """DataFusion's ``target_partitions``; ``None``: the core count."""
    options: Mapping[str, str] = field(default_factory=dict[str, str])
    """DataFusion configuration keys (``datafusion.execution.parquet.pushdown_filters``) to values."""

    def __hash__(self) -> int:  # a session pool keys sessions by their settings; options is a mapping
        return hash(
            (self.memory_limit, self.spill_dir, self.target_partitions, tuple(sorted(self.options.items())))
        )

    def resolved_memory_limit(self) -> int:
        """``memory_limit``, or the default share of this machine's memory (read now)."""
        if self.memory_limit is not None:
            return self.memory_limit
        return int(machine_memory() * DEFAULT_MEMORY_FRACTION)

    def merged_options(self) -> dict[str, str]:
        """:data:`DEFAULT_OPTIONS` overridden by ``options``, sorted by key."""
        return dict(sorted({**DEFAULT_OPTIONS, **self.options}.items()))


def new_session(settings: EngineSettings | None = None) -> SessionContext:
    """A session with a fair spill pool, a disk manager under ``spill_dir`` and the options applied."""
    settings = settings or EngineSettings()
    config = SessionConfig()
    if settings.target_partitions is not None:
        config = config.with_target_partitions(settings.target_partitions)
    for key, value in settings.merged_options().items():
        config = config.set(key, value)
    runtime = RuntimeEnvBuilder().with_fair_spill_pool(operator_limit(settings))
    if settings.spill_dir is None:
        runtime = runtime.with_disk_manager_os()
    else:
        runtime = runtime.with_disk_manager_specified(process_spill_dir(settings.spill_dir))
    return SessionContext(config, runtime)


def process_spill_dir(spill_dir: Path) -> Path:
    """This process's folder under ``spill_dir`` (created).

    DataFusion leaves its spill folder behind when a process ends without dropping the session (the
    pool keeps it; a cancelled build may end abruptly): one folder per process id lets
    :func:`sweep_spill` remove those of dead processes without touching a live one's.
    """
    folder = spill_dir / str(os.getpid())
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sweep_spill(spill_dir: Path) -> list[Path]:
    """Remove the spill folders of processes that no longer exist; returns what was removed."""
    removed: list[Path] = []
    if not spill_dir.is_dir():
        return removed
    for folder in spill_dir.iterdir():
        if folder.is_dir() and folder.name.isdigit() and not _process_alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def operator_limit(settings: EngineSettings) -> int:
    """Bytes of DataFusion's memory pool (:data:`OPERATOR_SHARE` of the memory limit)."""
    return int(settings.resolved_memory_limit() * OPERATOR_SHARE)


def result_limit(settings: EngineSettings) -> int:
    """Bytes a plan's collected result may hold (what the memory pool does not get)."""
    return settings.resolved_memory_limit() - operator_limit(settings)


def effective_settings(settings: EngineSettings) -> dict[str, str]:
    """What the sessions of ``settings`` actually get, as text (recorded once per run and reported)."""
    limit = settings.resolved_memory_limit()
    effective = {
        "memory_limit": f"{limit} ({format_size(limit)})",
        "memory_limit_source": "configured"
        if settings.memory_limit is not None
        else f"default: {DEFAULT_MEMORY_FRACTION:.0%} of {format_size(machine_memory())}",
        "memory_pool": f"fair spill pool of {format_size(operator_limit(settings))}",
        "result_limit": format_size(result_limit(settings)),
        "spill_dir": str(settings.spill_dir) if settings.spill_dir else "(system temporary directory)",
        "target_partitions": str(settings.target_partitions or os.cpu_count() or 1),
    }
    return effective | allocator_settings() | settings.merged_options()


def machine_memory() -> int:
    """Physical memory in bytes, or this process's cgroup memory limit when that is lower."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _CGROUP_LIMITS:
        try:
            text = Path(path).read_text(encoding="ascii").strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < physical:
            return int(text)
    return physical


def parse_size(value: str | int, *, source: str | None = None, key: str | None = None) -> int:
    """Bytes from ``2GB``, ``512MiB``, ``1.5G``, ``1073741824`` or ``70%`` (of :func:`machine_memory`).

    Units are binary, as DataFusion reads them: ``2GB`` is 2 GiB. Raises :class:`ConfigError` naming
    ``source`` and ``key`` when the value is not a positive size.

    >>> parse_size("1.5g")
    1610612736
    >>> parse_size("lots", source="codeanatomy.toml", key="engine.memory_limit")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    codeanatomy_assets.errors.ConfigError: codeanatomy.toml: engine.memory_limit: not a size: 'lots' ...
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"must be a size such as 2GB, not {type(value).__name__}", source=source, key=key)
    size = value if isinstance(value, int) else _size_text(value, source=source, key=key)
    if size < 1 or not math.isfinite(size):
        raise ConfigError(f"must be a positive size: {value!r}", source=source, key=key)
    return int(size)


def _size_text(value: str, *, source: str | None, key: str | None) -> float:
    """Bytes (not yet checked positive) of a size text: ``2GB``, ``1.5G`` or ``70%``."""
    if match := _PERCENT_RE.match(value):
        percent = float(match["number"])
        if not 0 < percent <= 100:
            raise ConfigError(f"a share of memory must be in (0%, 100%]: {value!r}", source=source, key=key)
        return machine_memory() * percent / 100
    if match := _SIZE_RE.match(value):
        return float(match["number"]) * _UNITS[match["unit"].upper()]
    raise ConfigError(f"not a size: {value!r} (use e.g. 2GB, 512MiB, 70%)", source=source, key=key)


def format_size(size: int) -> str:
    """``size`` bytes in binary units, one decimal (``1.5 GiB``)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def validate_options(options: Mapping[str, str], *, source: str | None, key: str) -> dict[str, str]:
    """``options`` if DataFusion accepts every key and value, else :class:`ConfigError` naming the key.

    ``datafusion.runtime.*`` keys are refused: the runtime is built from ``memory_limit`` and
    ``spill_dir``.
    """
    for name, value in options.items():
        where = f"{key}.{name}"
        if name.startswith(_RESERVED_PREFIX):
            raise ConfigError(
                "runtime keys are set by memory_limit and the spill folder", source=source, key=where
            )
        try:
            SessionConfig().set(name, value)
        except Exception as exc:  # noqa: BLE001 - DataFusion raises ValueError naming the problem: keep only that line
            raise ConfigError(_first_cause(str(exc)), source=source, key=where) from None
    return dict(options)


def memory_exhausted(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) is DataFusion's ``Resources exhausted``."""
    seen: BaseException | None = error
    while seen is not None:
        if "Resources exhausted" in str(seen):
            return True
        seen = seen.__cause__
    return False


def _first_cause(message: str) -> str:
    """DataFusion's ``Error setting config X caused by Y caused by Z`` as ``Y: Z`` on one line."""
    parts = [" ".join(part.split()) for part in re.split(r"\bcaused by\b", message)]
    return ": ".join(part for part in parts[1:] if part) or parts[0]
