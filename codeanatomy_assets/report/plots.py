"""The report's plots, drawn with pygal as inline SVG (no network, no JavaScript).

- :func:`phase_timings`: per plan, its four phases as stacked horizontal bars (ms);
- :func:`scan_files`: per scan, the files it read beside the files Delta's statistics could skip;
- :func:`trends`: over the last runs of the pipeline, each plan's execute time (ms), and the run's duration
  (s) on the secondary axis.

pygal writes SVG directly (a plot costs milliseconds, its import 0.05 s; matplotlib took 0.6 s of every
build, docs/benchmarks.md). Its JavaScript (tooltips, fetched from a CDN) is turned off, and so is its XML
declaration (not allowed inside HTML); the inline script and the comments it always adds are removed.
Each function returns the SVG text, or ``None`` when there is nothing to plot.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Final

PHASE_ORDER: Final = ("logical", "optimized", "physical", "execute")
PHASE_COLORS: Final = {
    "logical": "#9ecae1",
    "optimized": "#6baed6",
    "physical": "#3182bd",
    "execute": "#08519c",
}
SCAN_SERIES: Final = (
    ("total_files", "live files", "#bdbdbd"),
    ("candidate_files", "read", "#3182bd"),
    ("delta_prunable_files", "Delta could skip", "#e6550d"),
)
_WIDTH: Final = 800
_SCRIPT: Final = re.compile(r"<script\b.*?</script>", re.DOTALL)
_COMMENT: Final = re.compile(r"<!--.*?-->", re.DOTALL)


def _chart(kind: str, title: str, height: int, colors: Sequence[str] = ()) -> Any:
    import pygal
    from pygal.style import Style

    style = Style(colors=tuple(colors) or Style().colors, background="white", plot_background="white")
    return getattr(pygal, kind)(
        title=title,
        width=_WIDTH,
        height=height,
        style=style,
        js=[],
        disable_xml_declaration=True,
        legend_at_bottom=True,
        truncate_label=40,
    )


def _svg(chart: Any) -> str:
    """The chart's SVG without the script pygal always adds (its config, for its tooltips) and without
    its comments (links to pygal's site)."""
    return _COMMENT.sub("", _SCRIPT.sub("", chart.render(is_unicode=True)))


def phase_timings(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """Stacked bars: per plan, the milliseconds of each phase."""
    per_plan: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        if isinstance(row.get("duration_ms"), int | float) and row.get("phase") in PHASE_ORDER:
            per_plan[row["plan"] or "?"][row["phase"]] = float(row["duration_ms"])
    if not per_plan:
        return None
    plans = sorted(per_plan, key=lambda p: sum(per_plan[p].values()))
    chart = _chart(
        "HorizontalStackedBar", "Plan phases (ms)", 160 + 40 * len(plans), tuple(PHASE_COLORS.values())
    )
    chart.x_labels = plans
    for phase in PHASE_ORDER:
        chart.add(phase, [per_plan[p].get(phase, 0.0) for p in plans])
    return _svg(chart)


def scan_files(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """Grouped bars: per scan, the live files, the files read and the files Delta could have skipped."""
    scans = [r for r in rows if isinstance(r.get("total_files"), int)]
    if not scans:
        return None
    colors = [color for _, _, color in SCAN_SERIES]
    chart = _chart("HorizontalBar", "Files per scan", 160 + 50 * len(scans), colors)
    chart.x_labels = [f"{r['plan']} / {r['dataset']}" for r in scans]
    for key, label, _ in SCAN_SERIES:
        chart.add(label, [r.get(key) or 0 for r in scans])
    return _svg(chart)


def trends(history: Sequence[Mapping[str, Any]]) -> str | None:
    """Lines over the last runs: each plan's execute time (ms), and the run's duration (s, secondary axis)."""
    if len(history) < 2:
        return None
    chart = _chart("Line", f"The last {len(history)} runs", 500)
    chart.x_labels = [str(h.get("label") or "")[:8] for h in history]
    chart.x_label_rotation = 45
    chart.y_title = "execute (ms)"
    for plan in sorted({p for h in history for p in h.get("execute_ms", {})}):
        chart.add(plan, [h.get("execute_ms", {}).get(plan) for h in history])
    durations = [(h.get("duration_ms") or 0) / 1000 for h in history]
    chart.add("run (s)", durations, secondary=True, stroke_style={"width": 3})
    return _svg(chart)
