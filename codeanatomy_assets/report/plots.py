"""The report's plots, drawn with matplotlib as inline SVG (no network, no JavaScript).

- :func:`phase_timings`: per plan, its four phases as stacked horizontal bars (ms);
- :func:`scan_files`: per scan, the files it read beside the files Delta's statistics could skip;
- :func:`trends`: over the last runs of the pipeline, the run's duration and each plan's execute time.

Only :class:`matplotlib.figure.Figure` is used (not ``pyplot``: no global state, no GUI backend), and each
function returns the SVG text, or ``None`` when there is nothing to plot.
"""

from __future__ import annotations

import io
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


def _svg(figure: Any) -> str:
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})  # same input, same bytes
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # the XML declaration and doctype are not allowed inside HTML


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def phase_timings(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """Stacked bars: per plan, the milliseconds of each phase."""
    per_plan: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        if isinstance(row.get("duration_ms"), int | float) and row.get("phase") in PHASE_ORDER:
            per_plan[row["plan"] or "?"][row["phase"]] = float(row["duration_ms"])
    if not per_plan:
        return None
    plans = sorted(per_plan, key=lambda p: sum(per_plan[p].values()))
    figure = _figure(8, 1 + 0.4 * len(plans))
    axes = figure.subplots()
    left = [0.0] * len(plans)
    for phase in PHASE_ORDER:
        widths = [per_plan[p].get(phase, 0.0) for p in plans]
        axes.barh(plans, widths, left=left, label=phase, color=PHASE_COLORS[phase])
        left = [a + b for a, b in zip(left, widths, strict=True)]
    axes.set_xlabel("milliseconds")
    axes.set_title("Plan phases")
    axes.legend(loc="lower right", fontsize="small")
    return _svg(figure)


def scan_files(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """Grouped bars: per scan, the live files, the files read and the files Delta could have skipped."""
    scans = [r for r in rows if isinstance(r.get("total_files"), int)]
    if not scans:
        return None
    labels = [f"{r['plan']} / {r['dataset']}" for r in scans]
    figure = _figure(8, 1 + 0.5 * len(scans))
    axes = figure.subplots()
    series = (("total_files", "live files", "#bdbdbd"), ("candidate_files", "read", "#3182bd"))
    series += (("delta_prunable_files", "Delta could skip", "#e6550d"),)
    height = 0.8 / len(series)
    for index, (key, label, color) in enumerate(series):
        values = [r.get(key) or 0 for r in scans]
        positions = [i + index * height for i in range(len(scans))]
        axes.barh(positions, values, height=height, label=label, color=color)
    axes.set_yticks([i + height for i in range(len(scans))], labels)
    axes.set_xlabel("files")
    axes.set_title("Files per scan")
    axes.legend(loc="lower right", fontsize="small")
    return _svg(figure)


def trends(history: Sequence[Mapping[str, Any]]) -> str | None:
    """Lines over the last runs: the run's duration (s) and each plan's execute time (ms)."""
    if len(history) < 2:
        return None
    figure = _figure(8, 5)
    runs_axes, plans_axes = figure.subplots(2, 1, sharex=True)
    xs = list(range(len(history)))
    runs_axes.plot(xs, [(h.get("duration_ms") or 0) / 1000 for h in history], marker="o", color="#08519c")
    runs_axes.set_ylabel("run (s)")
    runs_axes.set_title(f"The last {len(history)} runs")
    plans = sorted({p for h in history for p in h.get("execute_ms", {})})
    for plan in plans:
        plans_axes.plot(xs, [h.get("execute_ms", {}).get(plan) for h in history], marker=".", label=plan)
    plans_axes.set_ylabel("execute (ms)")
    plans_axes.set_xticks(xs, [str(h.get("label") or "")[:8] for h in history], rotation=45, fontsize="small")
    if plans:
        plans_axes.legend(fontsize="x-small", ncol=2)
    return _svg(figure)
