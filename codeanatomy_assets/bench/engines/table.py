"""The figures of the engines case: the samples of every round, the median row per query and engine, the
summary per engine (ratios to ``native``), and the result problems that fail the case."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from codeanatomy_assets.bench.engines.names import NATIVE, PRODUCT, PRODUCT_NO_CAPTURE, PRODUCT_VARIANTS
from codeanatomy_assets.bench.harness import geomean, median, ratio, rounded

if TYPE_CHECKING:
    from codeanatomy_assets.bench.engines.product import BuildRecord

SampleTable = dict[str, dict[str, list[dict[str, Any]]]]
"""Per query, per engine (or ablation variant): one sample per round."""


class Samples:
    """The samples of every round, per query and engine (or ablation variant)."""

    def __init__(self) -> None:
        self.by_query: SampleTable = {}

    def add(self, query: str, engine: str, sample: dict[str, Any]) -> None:
        """One round's sample of ``engine`` on ``query``."""
        self.by_query.setdefault(query, {}).setdefault(engine, []).append(sample)

    def add_round(self, result: Mapping[str, Any]) -> None:
        """Every sample of a child's round (one engine's:
        :func:`~codeanatomy_assets.bench.engines.child.run_round`)."""
        for query, by_engine in result["queries"].items():
            for engine, sample in by_engine.items():
                self.add(query, engine, sample)


def median_of(values: Iterable[float | None]) -> float | None:
    """The rounded median of the values present (``None``: none is)."""
    present = [v for v in values if v is not None]
    return rounded(median(present)) if present else None


def _product_columns(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A product row's extra columns: the median of each plan phase, of the step, of the registration."""
    phases = sorted({p for r in runs for p in r["phases_ms"]})
    return {
        "phases_ms_median": {p: median_of(r["phases_ms"].get(p) for r in runs) for p in phases},
        "step_ms_median": median_of(r["step_ms"] for r in runs),
        "registration_ms_median": median_of(r["registration_ms"] for r in runs),
    }


def _native_columns(
    row: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], native: Mapping[str, Any]
) -> dict[str, Any]:
    """A row's ratios to ``native`` and whether every round's row count equals native's."""
    columns: dict[str, Any] = {"ratio_to_native": rounded(ratio(row["ms_median"], native["ms_median"]))}
    if "step_ms_median" in row:
        columns["step_ratio_to_native"] = rounded(ratio(row["step_ms_median"], native["ms_median"]))
    columns["rows_match_native"] = all(r["rows"] == native["rows"] for r in runs)
    return columns


def query_row(runs: Sequence[dict[str, Any]], native: Mapping[str, Any] | None) -> dict[str, Any]:
    """One engine on one query over the rounds: medians, samples, ratios to ``native``, result checks."""
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        return {"error": errors[0], "failed_rounds": len(errors)}
    row: dict[str, Any] = {
        "ms_median": median_of(r["ms"] for r in runs),
        "ms_samples": [rounded(r["ms"]) for r in runs],
        "rows": runs[0]["rows"],
    }
    if "phases_ms" in runs[0]:
        row.update(_product_columns(runs))
    if native is not None and "ms_median" in native:
        row.update(_native_columns(row, runs, native))
    checked = [r["matches_baseline"] for r in runs if "matches_baseline" in r]
    if checked:
        row["multiset_match_baseline"] = None if None in checked else all(checked)
    return row


def summarize(samples: SampleTable, engines: Sequence[str], builds: Sequence[BuildRecord] = ()) -> dict:
    """Per query and engine the median row; per engine the geometric mean of its ratios to native."""
    per_query: dict[str, dict[str, Any]] = {}
    for query, by_engine in samples.items():
        native = query_row(by_engine[NATIVE], None) if NATIVE in by_engine else None
        per_query[query] = {engine: query_row(runs, native) for engine, runs in by_engine.items() if runs}
    return {
        "per_query": per_query,
        "engines": {
            engine: _engine_summary(engine, per_query, builds)
            for engine in engines
            if any(engine in by for by in per_query.values())
        },
    }


def _queries_where(rows: Mapping[str, Mapping[str, Any]], key: str) -> list[str]:
    """The queries whose row says ``False`` for ``key`` (a failed check), sorted."""
    return sorted(q for q, r in rows.items() if r.get(key) is False)


def _engine_summary(
    engine: str, per_query: Mapping[str, Mapping[str, Any]], builds: Sequence[BuildRecord]
) -> dict[str, Any]:
    rows = {q: by[engine] for q, by in per_query.items() if engine in by}
    ratios = {q: r["ratio_to_native"] for q, r in rows.items() if r.get("ratio_to_native")}
    worst = max(ratios.items(), key=lambda item: item[1], default=(None, None))
    summary: dict[str, Any] = {
        "geomean_ratio_to_native": rounded(geomean(ratios.values())),
        "max_ratio_to_native": {"query": worst[0], "ratio": worst[1]},
        "total_ms": rounded(sum(r["ms_median"] for r in rows.values() if "ms_median" in r), 1),
        "queries_compared": len(ratios),
        "queries_failed": sorted(q for q, r in rows.items() if "error" in r),
        "errors": {q: r["error"] for q, r in rows.items() if "error" in r},
        "row_count_mismatches": _queries_where(rows, "rows_match_native"),
        "multiset_mismatches": _queries_where(rows, "multiset_match_baseline"),
    }
    if engine in PRODUCT_VARIANTS:
        summary.update(_product_summary(engine, rows, builds))
    return summary


def _product_summary(
    variant: str, rows: Mapping[str, Mapping[str, Any]], builds: Sequence[BuildRecord]
) -> dict[str, Any]:
    """A product variant's step figures and the median wall time of its successful builds."""
    steps = [r["step_ratio_to_native"] for r in rows.values() if r.get("step_ratio_to_native")]
    walls = [b.wall_seconds for b in builds if b.variant == variant and b.exit_code == 0]
    return {
        "step_geomean_ratio_to_native": rounded(geomean(steps)),
        "step_total_ms": rounded(sum(r.get("step_ms_median") or 0 for r in rows.values()), 1),
        "build_wall_seconds_median": median_of(walls),
    }


def capture_over_no_capture(per_query: Mapping[str, Mapping[str, Any]]) -> float | None:
    """The geometric mean over queries of the product's time with capture over without."""
    ratios = [
        ratio(by[PRODUCT].get("ms_median"), by[PRODUCT_NO_CAPTURE].get("ms_median"))
        for by in per_query.values()
        if PRODUCT in by and PRODUCT_NO_CAPTURE in by
    ]
    return rounded(geomean(r for r in ratios if r))


def _engine_problems(summary: Mapping[str, Any]) -> list[str]:
    problems = []
    for engine, body in summary["engines"].items():
        if body["row_count_mismatches"]:
            problems.append(
                f"{engine}: row counts differ from native on {', '.join(body['row_count_mismatches'])}"
            )
        if body["multiset_mismatches"]:
            problems.append(f"{engine}: rows differ from native on {', '.join(body['multiset_mismatches'])}")
    return problems


def result_problems(
    summary: Mapping[str, Any], builds: Sequence[BuildRecord], ablation: Mapping[str, Any] | None
) -> list[str]:
    """Every result that fails the case: mismatched rows (engines, ablation variants), failed builds."""
    problems = _engine_problems(summary)
    for name, variant in ((ablation or {}).get("variants") or {}).items():
        if variant["result_mismatches"]:
            problems.append(
                f"ablation {name}: rows differ from defaults on {', '.join(variant['result_mismatches'])}"
            )
    problems += [
        f"{b.variant} round build exited {b.exit_code}: {b.stderr_tail}" for b in builds if b.exit_code != 0
    ]
    return problems
