"""``codeanatomy doctor URI``: diagnose one Delta table without a build.

Exit codes: 0 no diagnostic at error severity; 1 errors found (with ``--recursive``: in any table; with
``--fix --apply``: also a maintenance step that failed); 2 usage error (an empty URI, a malformed
``--storage-option``, ``--apply`` without ``--fix``, an unlistable ``--recursive`` folder). Heavy
imports happen inside the command so ``codeanatomy --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from codeanatomy_assets.delta.treatment import DoctorTreatment


def parse_storage_options(items: Sequence[str] | None) -> dict[str, str]:
    """``["K=V", ...]`` → ``{"K": "V"}``; raises ``ValueError`` naming the malformed item (never its value).

    >>> parse_storage_options(["AWS_REGION=eu-west-1", "AWS_ALLOW_HTTP=true"])
    {'AWS_REGION': 'eu-west-1', 'AWS_ALLOW_HTTP': 'true'}
    """
    options: dict[str, str] = {}
    for position, item in enumerate(items or (), start=1):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            shown = key if sep else f"{item[:1]}…" if item else "''"
            raise ValueError(
                f"--storage-option #{position} ({shown}) is not KEY=VALUE; "
                "pass e.g. --storage-option AWS_REGION=us-east-1"
            )
        options[key] = value
    return options


def doctor(
    uri: str,
    /,
    *,
    storage_option: list[str] | None = None,
    format: Literal["md", "json"] = "md",
    fix: bool = False,
    apply: bool = False,
    recursive: bool = False,
    small_file_mb: float = 8.0,
) -> int:
    """Diagnose a Delta table: log health, protocol, provider, layout; plan or apply maintenance.

    Parameters
    ----------
    uri
        Table location: a local path, file://, s3://, gs:// or az:// URI (--recursive: a folder or prefix).
    storage_option
        Storage option as KEY=VALUE (repeatable), e.g. --storage-option AWS_ENDPOINT_URL=http://127.0.0.1:8333.
    format
        Output format: Markdown (md) or JSON (json).
    fix
        Add the maintenance plan the layout findings call for (a dry run: nothing is written).
    apply
        With --fix: run the plan (compact, vacuum past the retention, checkpoint, clean up expired logs).
    recursive
        Diagnose every Delta table under URI and print one summary, worst first.
    small_file_mb
        A live file under this many MiB counts as small.
    """
    problem = _argument_problem(uri, fix=fix, apply=apply, small_file_mb=small_file_mb)
    if problem:
        return _usage_error(problem)
    try:
        options = parse_storage_options(storage_option)
    except ValueError as exc:
        return _usage_error(str(exc))
    treatment = _treatment(fix=fix, apply=apply, small_file_mb=small_file_mb)
    if recursive:
        return _doctor_many(uri, options, treatment, format)
    from codeanatomy_assets.delta.doctor import diagnose, exit_code

    report = diagnose(uri, options, treatment=treatment)
    _write_report(report, format)
    return exit_code(report)


def _argument_problem(uri: str, *, fix: bool, apply: bool, small_file_mb: float) -> str | None:
    """What is wrong with the arguments, in one line (``None`` when nothing is)."""
    if not uri.strip():
        return "the table URI is empty; pass a path or URI, e.g. ./data/trips"
    if apply and not fix:
        return "--apply runs the maintenance plan of --fix; pass both: --fix --apply"
    if not small_file_mb > 0:
        return f"--small-file-mb must be positive (got {small_file_mb})"
    return None


def _treatment(*, fix: bool, apply: bool, small_file_mb: float) -> DoctorTreatment:
    from codeanatomy_assets.delta.layout import LayoutThresholds
    from codeanatomy_assets.delta.treatment import DoctorTreatment

    thresholds = LayoutThresholds(small_file_bytes=int(small_file_mb * 1024 * 1024))
    return DoctorTreatment(fix=fix, apply=apply, thresholds=thresholds)


def _doctor_many(
    root: str, options: dict[str, str], treatment: DoctorTreatment, format: Literal["md", "json"]
) -> int:
    """Every table under ``root``, diagnosed one after the other (progress on stderr), then one summary."""
    from codeanatomy_assets.delta.doctor import diagnose, exit_code
    from codeanatomy_assets.delta.survey import find_tables, ordered, summary_markdown

    try:
        tables = find_tables(root, options)
    except Exception as exc:  # noqa: BLE001 - an unreadable folder is a one-line usage error
        return _usage_error(f"cannot list {root}: {type(exc).__name__}: {exc}")
    reports: list[dict[str, Any]] = []
    for number, table in enumerate(tables, start=1):
        print(f"[{number}/{len(tables)}] {table}", file=sys.stderr, flush=True)
        reports.append(diagnose(table, options, treatment=treatment))
    if format == "json":
        document = {"root": root, "tables": ordered(reports)}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(summary_markdown(root, reports))
    return max((exit_code(r) for r in reports), default=0)


def _usage_error(message: str) -> int:
    """Print a usage error to stderr; its exit code."""
    print(f"codeanatomy doctor: {message}", file=sys.stderr)
    return 2


def _write_report(report: dict[str, Any], format: Literal["md", "json"]) -> None:
    """The report to stdout as Markdown or JSON."""
    from codeanatomy_assets.delta.doctor import render_markdown

    if format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(render_markdown(report))
    sys.stdout.flush()
