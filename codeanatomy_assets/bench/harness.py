"""What every benchmark case shares: clocks, medians and ratios, interleaving, the machine, failures.

The numbers of ``codeanatomy bench`` are meant to be read as *ratios measured side by side*: the machine
is shared and its absolute speed varies, so variants of one case are interleaved (round robin, the
order rotated every round) and each reports the median of its samples.

>>> median([3.0, 1.0, 2.0])
2.0
>>> round(geomean([1.0, 4.0]), 6)
2.0
>>> ratio(3.0, 2.0)
1.5
>>> ratio(1.0, 0.0) is None
True
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Final, TypeVar

from codeanatomy_assets.home import write_text_atomically

_T = TypeVar("_T")

VERSIONED_PACKAGES: Final = (
    "dagster",
    "datafusion",
    "deltalake",
    "pyarrow",
    "opentelemetry-sdk",
    "cyclopts",
    "tpchgen-cli",
)
DEFAULT_CACHE_DIR: Final = Path("~/.cache/codeanatomy-bench")


def median(values: Iterable[float]) -> float:
    """The median of ``values`` (``ValueError`` when empty)."""
    return float(statistics.median(list(values)))


def geomean(values: Iterable[float]) -> float | None:
    """The geometric mean of positive ``values`` (``None`` when there is none)."""
    positive = [v for v in values if v > 0]
    if not positive:
        return None
    return math.exp(sum(math.log(v) for v in positive) / len(positive))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``; ``None`` when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def rounded(value: float | None, digits: int = 3) -> float | None:
    """``value`` rounded for the JSON (``None`` stays ``None``)."""
    return None if value is None else round(value, digits)


def timed(work: Callable[[], _T]) -> tuple[float, _T]:
    """``(seconds, result)`` of one call, on the monotonic high-resolution clock."""
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def rotated(names: Sequence[_T], round_index: int) -> list[_T]:
    """``names`` (variants, or their sessions) rotated by ``round_index``, so no variant always runs first
    (warm caches, turbo).

    >>> rotated(["a", "b", "c"], 1)
    ['b', 'c', 'a']
    """
    if not names:
        return []
    shift = round_index % len(names)
    return [*names[shift:], *names[:shift]]


def round_order(steps: Sequence[_T], round_index: int) -> list[_T]:
    """The order of a round's steps: rotated, and reversed in odd rounds (plain rotation would always run
    a step right after the same neighbour). Round 0 keeps the given order, so a baseline listed first runs
    first there.

    >>> [''.join(round_order("ECN", i)) for i in range(6)]
    ['ECN', 'ENC', 'NEC', 'NCE', 'CNE', 'CEN']
    """
    order = rotated(steps, round_index)
    return order[::-1] if round_index % 2 else order


def interleave(variants: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Run every variant once per round, in rotated order; the seconds of each run, per variant.

    A variant that raises stops the whole measurement (the caller records the error).
    """
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        for name in rotated(names, index):
            seconds, _ = timed(variants[name])
            samples[name].append(seconds)
    return samples


def error_record(exc: BaseException) -> dict[str, str]:
    """How a failure appears in the JSON: ``error.type`` (qualified class name), message, last frames."""
    module = type(exc).__module__
    kind = type(exc).__qualname__ if module == "builtins" else f"{module}.{type(exc).__qualname__}"
    frames = traceback.format_exception(exc)
    return {
        "error.type": kind,
        "message": " ".join(str(exc).split())[:1000],
        "traceback_tail": "".join(frames[-3:])[-2000:],
    }


def failure(kind: str, message: str) -> dict[str, str]:
    """A failure a case finds itself (no exception): the ``error.type`` and message of :func:`error_record`.

    >>> failure("BuildFailed", "no output")
    {'error.type': 'BuildFailed', 'message': 'no output'}
    """
    return {"error.type": kind, "message": message}


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseOutcome:
    """One case as it ran: its figures, or the error that stopped it."""

    name: str
    seconds: float
    figures: Mapping[str, Any] | None
    error: Mapping[str, str] | None = None

    def to_row(self) -> dict[str, Any]:
        """The case's JSON object: its figures plus ``case_seconds`` (and ``error`` when it failed)."""
        body: dict[str, Any] = dict(self.figures or {})
        body["case_seconds"] = round(self.seconds, 2)
        if self.error is not None:
            body["error"] = dict(self.error)
        return body


def run_case(name: str, work: Callable[[], Mapping[str, Any]]) -> CaseOutcome:
    """Run one case; an exception becomes the case's recorded error instead of ending the benchmark."""
    started = time.perf_counter()
    try:
        figures = work()
    except Exception as exc:  # noqa: BLE001 - a failed case is a result: recorded with its error, the others still run
        return CaseOutcome(
            name=name, seconds=time.perf_counter() - started, figures=None, error=error_record(exc)
        )
    return CaseOutcome(name=name, seconds=time.perf_counter() - started, figures=figures)


def git_commit(cwd: Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the checkout holding this package (``None`` outside a checkout)."""
    where = cwd or Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and sha else None


def uncommitted_files(cwd: Path | None = None) -> list[str] | None:
    """Tracked files with uncommitted changes in the checkout holding this package (builds run the tree)."""
    where = cwd or Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return sorted(line[3:] for line in done.stdout.splitlines()) if done.returncode == 0 else None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (how busy the shared machine was), where the OS has them."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """Cores, memory, platform, Python and the versions of the stack."""
    return {
        "cores": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "versions": {name: _version(name) for name in VERSIONED_PACKAGES},
        "load_average_at_start": load_average(),
    }


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON with sorted keys (atomically: a temp file then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomically(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
