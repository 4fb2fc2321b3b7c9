"""The report of one run: collected, its gates evaluated, rendered, and written under the project home."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.home import ProjectHome, write_text_atomically
from codeanatomy_assets.report.changes import changes_section
from codeanatomy_assets.report.gates import GateResult, evaluate_gates
from codeanatomy_assets.report.html import HTML_FILE, render_html, run_history
from codeanatomy_assets.report.markdown import render_markdown
from codeanatomy_assets.report.sections import SECTIONS, collect_report

REPORT_FILE: Final = "run_diagnostics_report.md"


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedReport:
    run_id: str
    markdown: str
    data: Mapping[str, Any]
    path: Path
    gates: tuple[GateResult, ...]
    html_path: Path | None = None


def to_json(data: Mapping[str, Any], gates: Sequence[GateResult]) -> dict[str, Any]:
    """The JSON form: one key per section, plus the gates."""
    out = {key: data[key] for key in SECTIONS}
    out["gates"] = [g.to_row() for g in gates]
    return out


def build_report(
    store: DeltaDiagnosticsStore, run_id: str, *, baseline: str | None = None
) -> tuple[dict[str, Any], str, tuple[GateResult, ...]]:
    """Collect, compare with the previous run (or ``baseline``), evaluate gates and render one run."""
    data = collect_report(store, run_id)
    data["changes"] = changes_section(store, data, baseline=baseline)
    gates = evaluate_gates(data)
    return data, render_markdown(data, gates), gates


def write_run_report(
    home: ProjectHome,
    run_id: str,
    *,
    label: str | None = None,
    baseline: str | None = None,
    html: bool = True,
) -> RenderedReport:
    """Render run ``run_id`` and write ``<home>/reports/<run_id>/run_diagnostics_report.md``.

    The newest report is also copied to ``<home>/run_diagnostics_report.md``.
    """
    store = home.diagnostics_store()
    data, markdown, gates = build_report(store, run_id, baseline=baseline)
    if label and not data["run"]["label"]:
        data["run"]["label"] = label
        markdown = render_markdown(data, gates)
    folder = home.reports / run_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / REPORT_FILE
    write_text_atomically(path, markdown)
    write_text_atomically(home.root / REPORT_FILE, markdown)
    html_path = folder / HTML_FILE
    if html:  # the plots cost ~0.3 s: a build driven by the CLI renders them once, with its final report
        write_text_atomically(html_path, render_html(data, gates, run_history(store, run_id)))
    return RenderedReport(
        run_id=run_id,
        markdown=markdown,
        data=to_json(data, gates),
        path=path,
        gates=gates,
        html_path=html_path,
    )
