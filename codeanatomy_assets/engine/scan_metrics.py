"""Physical scans: the exact counts of each scan operator of an executed plan, from its metrics.

Every scan operator (a ``DeltaScanExec`` with its inner ``DataSourceExec``, or a leaf such as a native
Parquet ``DataSourceExec``) is summarized from the metrics of the one execution: the files it labelled and
opened, bytes scanned, and the pruning metrics (``4 total → 1 matched``, :func:`parse_pruning`). The scans
of one table under one ``UnionExec`` can be folded into one (:func:`merge_union_scans`).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Final

from datafusion.plan import ExecutionPlan

from codeanatomy_assets.engine.metrics import MetricReading, OperatorSnapshot, operator_name_of

_NON_SCAN_LEAVES: Final = frozenset({"PlaceholderRowExec", "EmptyExec"})
_DELTA_SCAN: Final = "DeltaScanExec"
_ROW_GROUPS: Final = "row_groups_pruned_statistics"
_FILE_RANGES: Final = "files_ranges_pruned_statistics"
_PRUNING_METRICS: Final = frozenset({_ROW_GROUPS, _FILE_RANGES})
_SUMMED_METRICS: Final = frozenset({"files_opened", "bytes_scanned", "metadata_load_time"})
FILE_METRICS: Final = _PRUNING_METRICS | _SUMMED_METRICS
"""The per-file metrics whose ``filename`` label :func:`physical_scans` reads (which files a scan knew and
opened); ``read_plan(plan, labelled=FILE_METRICS)`` reads no other label. Reading labels is the costly part
of reading metrics (15 of 18 ms for the 9,319 metrics of TPC-H q21 at SF 1); every file a Parquet scan
lists carries these metrics, zero when it was pruned (checked on all 22 TPC-H queries: the files named by
these metrics are the files named by all of them)."""
_PRUNING_RE: Final = re.compile(
    r"^\s*(?P<total>[\d.]+)\s*(?P<tu>[A-Za-z]*)\s*total\s*→\s*(?P<matched>[\d.]+)\s*(?P<mu>[A-Za-z]*)\s*matched"
    r"(?:\s*->\s*[\d.]+\s*[A-Za-z]*\s*fully matched)?\s*$"
)
_COLUMN_REF_RE: Final = re.compile(r"\b([A-Za-z_]\w*)@(\d+)")
_JOIN_ON_RE: Final = re.compile(r"\bon=\[(.*?)\](?:,|$)")
_JOIN_PAIR_RE: Final = re.compile(r"\(([A-Za-z_]\w*)@(\d+), ([A-Za-z_]\w*)@(\d+)\)")
_COLUMN_KEEPING: Final = frozenset(
    {
        "RepartitionExec",
        "CoalesceBatchesExec",
        "CoalescePartitionsExec",
        "CooperativeExec",
        "SortExec",
        "SortPreservingMergeExec",
    }
)
"""Operators whose output columns are their input's: references above them reach the scan below."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PruningCount:
    """A pruning metric (``4 total → 1 matched``); ``exact`` is False when its text was rounded."""

    total: int
    matched: int
    exact: bool


@functools.lru_cache(maxsize=4096)  # a plan over many files repeats the same few texts thousands of times
def parse_pruning(text: str) -> PruningCount | None:
    """Parse the text of a pruning metric; ``None`` when the text is not one.

    >>> parse_pruning("4 total → 1 matched")
    PruningCount(total=4, matched=1, exact=True)
    >>> parse_pruning("3.00 K total → 1.50 K matched")
    PruningCount(total=3000, matched=1500, exact=False)
    """
    match = _PRUNING_RE.match(text)
    if match is None:
        return None
    scale = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
    units = (match["tu"].upper(), match["mu"].upper())
    if any(u not in scale for u in units):
        return None
    total = int(Decimal(match["total"]) * scale[units[0]])
    matched = int(Decimal(match["matched"]) * scale[units[1]])
    return PruningCount(total=total, matched=matched, exact=units == ("", ""))


def operator_name(node: ExecutionPlan) -> str:
    """The operator's type name (``HashJoinExec``), looking through DataFusion's FFI wrapper."""
    return operator_name_of(node.display())


@dataclass(frozen=True, slots=True, kw_only=True)
class PhysicalScan:
    operator: str
    filenames: frozenset[str]
    opened: frozenset[str]
    files_opened: int | None
    bytes_scanned: int | None
    row_groups: PruningCount | None
    file_ranges: PruningCount | None
    output_rows: int | None
    union: int | None = None
    merged: int = 1
    columns: frozenset[tuple[str, int]] = frozenset()
    """``(name, index)`` of its output columns, as the operators above it reference them (``id@0``)."""


def physical_scans(plan: OperatorSnapshot) -> list[PhysicalScan]:
    """Every scan of the physical plan, leftmost first.

    Scans reached from a ``UnionExec`` through single-input operators carry that union's number, so that
    the per-file scans of a table registered as a union of files (:func:`~codeanatomy_assets.bench.tpch.
    native_parquet_register`) can be counted as one scan of that table.
    """
    found: list[PhysicalScan] = []
    unions = iter(range(1, 1 << 30))

    def walk(node: OperatorSnapshot, union: int | None, columns: frozenset[tuple[str, int]]) -> None:
        name = node.name
        children = node.children
        if name == _DELTA_SCAN or (not children and name not in _NON_SCAN_LEAVES):
            found.append(replace(_summarize_scan(node, name), union=union, columns=columns))
            return
        if name == "UnionExec":
            union = next(unions)
        elif len(children) != 1:
            union = None
        for index, child in enumerate(children):
            walk(child, union, _child_columns(node, index, columns))

    walk(plan, None, frozenset())
    return found


def _child_columns(
    node: OperatorSnapshot, index: int, columns: frozenset[tuple[str, int]]
) -> frozenset[tuple[str, int]]:
    """The ``name@index`` references to child ``index``'s output that ``node`` (and, through operators that
    keep their input's columns, the operators above it) shows: a join's keys, a filter's predicate, ..."""
    name, text = node.name, node.display
    if name.endswith("JoinExec"):
        on = _JOIN_ON_RE.search(text)
        pairs = _JOIN_PAIR_RE.findall(on.group(1)) if on else []
        return frozenset((col, int(i)) for col, i in (pair[2 * index : 2 * index + 2] for pair in pairs))
    if len(node.children) != 1:
        return columns if name == "UnionExec" else frozenset()
    own = frozenset((col, int(i)) for col, i in _COLUMN_REF_RE.findall(text))
    keeps = name in _COLUMN_KEEPING or (name == "FilterExec" and "projection=" not in text)
    return own | columns if keeps else own


def merge_union_scans(
    attributed: list[tuple[PhysicalScan, str | None, str]],
) -> list[tuple[PhysicalScan, str | None, str]]:
    """Fold the scans of one table under one union into a single scan (their counts summed)."""
    merged: list[tuple[PhysicalScan, str | None, str]] = []
    index: dict[tuple[int, str], int] = {}
    for scan, name, how in attributed:
        key = (scan.union, name) if scan.union is not None and name is not None else None
        if key is None or key not in index:
            if key is not None:
                index[key] = len(merged)
            merged.append((scan, name, how))
            continue
        first, _, first_how = merged[index[key]]
        merged[index[key]] = (_combine(first, scan), name, first_how)
    return merged


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else (a or 0) + (b or 0)


def _add_pruning(a: PruningCount | None, b: PruningCount | None) -> PruningCount | None:
    if a is None or b is None:
        return a or b
    return PruningCount(total=a.total + b.total, matched=a.matched + b.matched, exact=a.exact and b.exact)


def _combine(a: PhysicalScan, b: PhysicalScan) -> PhysicalScan:
    return replace(
        a,
        filenames=a.filenames | b.filenames,
        opened=a.opened | b.opened,
        files_opened=_add(a.files_opened, b.files_opened),
        bytes_scanned=_add(a.bytes_scanned, b.bytes_scanned),
        row_groups=_add_pruning(a.row_groups, b.row_groups),
        file_ranges=_add_pruning(a.file_ranges, b.file_ranges),
        output_rows=_add(a.output_rows, b.output_rows),
        merged=a.merged + b.merged,
    )


def _summarize_scan(node: OperatorSnapshot, name: str) -> PhysicalScan:
    """The exact counts of one scan from its metrics (and those of the operators inside it)."""
    labelled: set[str] = set()
    opened: set[str] = set()
    sums: Counter[str] = Counter()
    pruning: dict[str, list[PruningCount | None]] = {}
    for metric in node.subtree_metrics():
        filename = metric.labels.get("filename")
        if filename:
            labelled.add(filename)
        if _tally(metric, sums, pruning) and filename:
            opened.add(filename)
    return PhysicalScan(
        operator=name,
        filenames=frozenset(labelled),
        opened=frozenset(opened),
        files_opened=sums.get("files_opened"),
        bytes_scanned=sums.get("bytes_scanned"),
        row_groups=_sum_pruning(pruning.get(_ROW_GROUPS)),
        file_ranges=_sum_pruning(pruning.get(_FILE_RANGES)),
        output_rows=node.output_rows,
    )


def _tally(metric: MetricReading, sums: Counter[str], pruning: dict[str, list[PruningCount | None]]) -> bool:
    """Add one metric to the sums or the pruning counts; whether it shows that its file was opened."""
    if metric.name in _PRUNING_METRICS:
        count = parse_pruning(metric.text or "")
        pruning.setdefault(metric.name, []).append(count)
        return count is not None and count.total > 0 and metric.name == _ROW_GROUPS
    if metric.name in _SUMMED_METRICS and (value := metric.exact_int) is not None:
        sums[metric.name] += value
        # A file whose metadata was loaded or whose bytes were read was opened; a file pruned by its
        # statistics before opening still gets labelled metrics, all zero.
        return value > 0 and metric.name in {"bytes_scanned", "metadata_load_time"}
    return False


def _sum_pruning(counts: list[PruningCount | None] | None) -> PruningCount | None:
    if not counts:
        return None
    parsed = [c for c in counts if c is not None]
    return PruningCount(
        total=sum(c.total for c in parsed),
        matched=sum(c.matched for c in parsed),
        exact=len(parsed) == len(counts) and all(c.exact for c in parsed),
    )
