"""``codeanatomy report``: render a past run's diagnostics from the store (default: the latest run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from cyclopts import Parameter

if TYPE_CHECKING:
    from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore


def report(
    *,
    run_id: Annotated[str | None, Parameter(help="Run to render (default: the latest run).")] = None,
    format: Annotated[
        Literal["md", "json", "html"], Parameter(help="Output format (html: one self-contained file).")
    ] = "md",
    baseline: Annotated[
        str | None, Parameter(help="Compare with this run (default: the previous completed run).")
    ] = None,
    home: Annotated[
        Path | None, Parameter(help="Project home (default: $CODEANATOMY_HOME or ./.codeanatomy).")
    ] = None,
) -> int:
    """Print the report of one run. Exit 1 when a gate failed, or the run failed or was cancelled."""
    from codeanatomy_assets.home import ProjectHome

    project = ProjectHome.resolve(home)
    if not project.remote_lake and not Path(project.diagnostics).is_dir():
        return _error(f"no diagnostics store at {project.diagnostics}")
    store = project.diagnostics_store()
    chosen = run_id or store.latest_run_id()
    if chosen is None:
        return _error(f"the store at {project.diagnostics} holds no run")
    for given, what in ((run_id, "run"), (baseline, "baseline run")):
        if given is not None and given not in store.run_ids():
            return _error(f"{what} {given!r} is not in the store")
    return _print_report(store, chosen, format, baseline)


def _error(message: str) -> int:
    print(f"codeanatomy report: error: {message}", file=sys.stderr)
    return 2


def _print_report(
    store: DeltaDiagnosticsStore,
    run_id: str,
    format: Literal["md", "json", "html"],
    baseline: str | None = None,
) -> int:
    """Print the report of ``run_id``; 1 when a gate failed, or the run failed or was cancelled."""
    from codeanatomy_assets.diagnostics.runs import RunStatus
    from codeanatomy_assets.report.run_report import build_report, to_json

    data, markdown, gates = build_report(store, run_id, baseline=baseline)
    if format == "json":
        print(json.dumps(to_json(data, gates), indent=2, sort_keys=True, default=str))
    elif format == "html":
        from codeanatomy_assets.report.html import render_html, run_history

        print(render_html(data, gates, run_history(store, run_id)), end="")
    else:
        print(markdown, end="")
    failed = data["run"]["status"] in (RunStatus.FAILED, RunStatus.CANCELLED) or not all(
        g.passed for g in gates
    )
    return 1 if failed else 0
