"""The session-settings ablation: ``native`` with one DataFusion setting changed at a time, against the
session's defaults; each variant in a child process of its own per round."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from codeanatomy_assets.allocator import THP_VARIABLE
from codeanatomy_assets.bench.engines.child import RoundJob, TpchQuery, run_child
from codeanatomy_assets.bench.engines.names import DEFAULTS, JobKind
from codeanatomy_assets.bench.engines.native_sources import NativeSource
from codeanatomy_assets.bench.engines.table import Samples, SampleTable, query_row
from codeanatomy_assets.bench.harness import error_record, geomean, ratio, round_order, rounded

DATAFUSION_ALLOW_THP: Final = "1"
ABLATION_SETTINGS: Final = {
    "datafusion.execution.parquet.pushdown_filters": ("true", "false"),
    "datafusion.execution.parquet.reorder_filters": ("true", "false"),
    "datafusion.execution.target_partitions": ("1", "2", "4"),
    "datafusion.execution.batch_size": ("8192", "16384", "32768"),
    "datafusion.execution.collect_statistics": ("true", "false"),
}
"""The settings the ablation tries, one at a time; a value equal to the session's default is skipped."""
ALLOCATOR_VARIANTS: Final = {f"allow_thp={DATAFUSION_ALLOW_THP}": {THP_VARIABLE: DATAFUSION_ALLOW_THP}}
"""Variants of the process environment: DataFusion's own allocator default (transparent huge pages on),
against the product's (:mod:`codeanatomy_assets.allocator`), which ``defaults`` runs with."""


def ablation_variants() -> dict[str, dict[str, str]]:
    """``defaults`` plus one variant per non-default value of :data:`ABLATION_SETTINGS`."""
    from datafusion import SessionContext

    names = ", ".join(f"'{k}'" for k in ABLATION_SETTINGS)
    rows = SessionContext().sql(
        f"SELECT name, value FROM information_schema.df_settings WHERE name IN ({names})"
    )
    defaults = dict(zip(*rows.to_pydict().values(), strict=True))
    variants: dict[str, dict[str, str]] = {DEFAULTS: {}}
    for key, values in ABLATION_SETTINGS.items():
        for value in values:
            if value != defaults.get(key):
                variants[f"{key.rsplit('.', 1)[-1]}={value}"] = {key: value}
    return variants


def _variant_summary(name: str, per_query: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One variant: the geometric mean of its ratios to ``defaults``, failed and mismatched queries."""
    ratios, mismatched, failed = [], [], []
    for query, by in per_query.items():
        base, row = by.get(DEFAULTS, {}), by[name]
        if "error" in row or "error" in base:
            failed.append(query)
            continue
        ratios.append(ratio(row["ms_median"], base["ms_median"]))
        if row["rows"] != base["rows"] or row.get("multiset_match_baseline") is False:
            mismatched.append(query)
    return {
        "geomean_ratio_to_defaults": rounded(geomean(r for r in ratios if r)),
        "total_ms": rounded(sum(by[name].get("ms_median") or 0 for by in per_query.values()), 1),
        "queries_failed": failed,
        "result_mismatches": mismatched,
    }


def summarize_ablation(samples: SampleTable) -> dict[str, Any]:
    """Per variant: the geometric mean of its per-query ratio to ``defaults``, failures, row mismatches."""
    per_query = {
        query: {variant: query_row(runs, None) for variant, runs in by.items()}
        for query, by in samples.items()
    }
    names = next(iter(per_query.values()), {})
    return {"variants": {name: _variant_summary(name, per_query) for name in names}, "per_query": per_query}


def measure_ablation(
    rounds: int, queries: Mapping[str, TpchQuery], sources: Mapping[str, NativeSource], folder: Path
) -> dict[str, Any]:
    """``rounds`` rounds of every variant over every query, each variant in a child of its own
    (``defaults`` first in round 0, which keeps its results for the others' check); the summary."""
    variants = {**ablation_variants(), **ALLOCATOR_VARIANTS}
    results = folder / "ablation_results"
    results.mkdir(exist_ok=True)
    samples = Samples()
    errors = []
    for index in range(rounds):
        for name in round_order(list(variants), index):
            job = RoundJob.over(
                sources,
                kind=JobKind.ABLATION,
                round_index=index,
                runner=name,
                settings={} if name in ALLOCATOR_VARIANTS else variants[name],
                environment=ALLOCATOR_VARIANTS.get(name, {}),
                queries=queries,
                results_dir=str(results),
            )
            try:
                samples.add_round(run_child(job, folder))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                errors.append({"round": index, "variant": name, **error_record(exc)})
    return {"settings": variants, "round_errors": errors, **summarize_ablation(samples.by_query)}
