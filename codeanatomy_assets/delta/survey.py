"""Many tables at once: every Delta table under a folder or prefix, and one summary of their diagnoses.

:func:`find_tables` walks the folder breadth-first through pyarrow's filesystem (local paths and the
object stores :func:`~codeanatomy_assets.delta.storage.open_filesystem` opens), reports a folder holding a
``_delta_log`` as a table and does not descend into it. Hidden and underscore folders (``_delta_log``,
``.git``, ``_checkpoints``) are not walked. :func:`summary_markdown` renders one row per table, worst
first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import pyarrow.fs as pafs

from codeanatomy_assets.delta.storage import open_filesystem
from codeanatomy_assets.diagnostics.attributes import DIAGNOSTIC_SEVERITY
from codeanatomy_assets.diagnostics.event_names import DELTA_LAYOUT, DELTA_LOG_HEALTH
from codeanatomy_assets.diagnostics.taxonomy import Severity

MAX_TABLES: Final = 10_000
"""The walk stops after this many tables (a guard against pointing it at a whole bucket by mistake)."""


def _child_uri(root_uri: str, root_path: str, child_path: str) -> str:
    """The URI of a folder found under ``root_uri`` (same scheme, the child's path appended)."""
    suffix = child_path[len(root_path) :].lstrip("/")
    return f"{root_uri.rstrip('/')}/{suffix}" if suffix else root_uri


def find_tables(uri: str, storage_options: Mapping[str, str] | None = None) -> list[str]:
    """Every Delta table under ``uri`` (``uri`` itself when it is one), as URIs in sorted order."""
    fs, root = open_filesystem(uri, storage_options)
    tables: list[str] = []
    pending = [root]
    while pending and len(tables) < MAX_TABLES:
        folder = pending.pop(0)
        children = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        folders = [c for c in children if c.type == pafs.FileType.Directory]
        if any(c.base_name == "_delta_log" for c in folders):
            tables.append(_child_uri(uri, root, folder))
            continue
        pending.extend(sorted(c.path for c in folders if not c.base_name.startswith(("_", "."))))
    return sorted(tables)


def worst_severity(report: Mapping[str, Any]) -> Severity:
    """The highest severity among a doctor report's diagnostics (info when there are none)."""
    severities = [Severity(d[DIAGNOSTIC_SEVERITY]) for d in report.get("diagnostics", ())]
    return max(severities, key=lambda s: s.rank, default=Severity.INFO)


_SUMMARY_EVENTS: Final = frozenset({DELTA_LOG_HEALTH, DELTA_LAYOUT})
"""Artifacts that summarize their findings: the summary names the finding itself."""


def _worst_message(report: Mapping[str, Any]) -> str:
    worst = worst_severity(report)
    if worst is Severity.INFO:
        return "-"
    candidates = [d for d in report.get("diagnostics", ()) if d[DIAGNOSTIC_SEVERITY] == worst.value]
    specific = [d for d in candidates if d["name"] not in _SUMMARY_EVENTS] or candidates
    return f"{specific[0]['code']}: {specific[0]['message']}"


def _row(report: Mapping[str, Any]) -> str:
    layout = report.get("layout") or {}
    counts: dict[Severity, int] = dict.fromkeys((Severity.ERROR, Severity.WARN), 0)
    for diagnostic in report.get("diagnostics", ()):
        severity = Severity(diagnostic[DIAGNOSTIC_SEVERITY])
        counts[severity] = counts.get(severity, 0) + 1
    cells = [
        f"`{report['uri']}`",
        worst_severity(report).value,
        str(counts[Severity.ERROR]),
        str(counts[Severity.WARN]),
        str(report.get("latest_version", "-")),
        str(layout.get("file_count", "-")),
        str(layout.get("total_bytes", "-")),
        _worst_message(report).replace("|", "\\|"),
    ]
    return "| " + " | ".join(cells) + " |"


def ordered(reports: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Reports worst first (then by URI)."""
    return sorted(reports, key=lambda r: (-worst_severity(r).rank, str(r["uri"])))


def summary_markdown(root: str, reports: Sequence[Mapping[str, Any]]) -> str:
    """One row per table, worst first: severity, error and warning counts, version, files, bytes, worst."""
    lines = [f"# codeanatomy doctor: {len(reports)} Delta table(s) under `{root}`", ""]
    lines += ["| table | worst | errors | warnings | version | files | bytes | worst finding |"]
    lines += ["|---|---|---|---|---|---|---|---|"]
    lines += [_row(r) for r in ordered(reports)]
    return "\n".join(lines) + "\n"
