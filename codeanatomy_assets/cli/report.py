"""``codeanatomy report``: render a past run's diagnostics from the store (default: the latest run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

from cyclopts import Parameter


def report(
    *,
    run_id: Annotated[str | None, Parameter(help="Run to render (default: the latest run).")] = None,
    format: Annotated[Literal["md", "json"], Parameter(help="Output format.")] = "md",
    home: Annotated[
        Path | None, Parameter(help="Project home (default: $CODEANATOMY_HOME or ./.codeanatomy).")
    ] = None,
) -> int:
    """Print the report of one run. Exit 1 when a gate failed, or the run failed or was cancelled."""
    from codeanatomy_assets.home import ProjectHome
    from codeanatomy_assets.report.run_report import build_report, to_json

    project = ProjectHome.resolve(home)
    if not project.remote_lake and not Path(project.diagnostics).is_dir():
        print(f"codeanatomy report: error: no diagnostics store at {project.diagnostics}", file=sys.stderr)
        return 2
    store = project.diagnostics_store()
    chosen = run_id or store.latest_run_id()
    if chosen is None:
        print(f"codeanatomy report: error: the store at {project.diagnostics} holds no run", file=sys.stderr)
        return 2
    if run_id is not None and run_id not in store.run_ids():
        print(f"codeanatomy report: error: run {run_id!r} is not in the store", file=sys.stderr)
        return 2
    data, markdown, gates = build_report(store, chosen)
    if format == "json":
        print(json.dumps(to_json(data, gates), indent=2, sort_keys=True, default=str))
    else:
        print(markdown, end="")
    failed = data["run"]["status"] in ("failed", "cancelled") or not all(g.passed for g in gates)
    return 1 if failed else 0
