"""``codeanatomy doctor URI``: diagnose one Delta table without a build.

Exit codes: 0 no diagnostic at error severity, 1 errors found, 2 usage error (an empty URI, a malformed
``--storage-option``). Heavy imports happen inside the command so ``codeanatomy --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, Literal


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
) -> int:
    """Diagnose one Delta table: log health, protocol compatibility, and the provider a build would choose.

    Parameters
    ----------
    uri
        Table location: a local path, file://, s3://, gs:// or az:// URI.
    storage_option
        Storage option as KEY=VALUE (repeatable), e.g. --storage-option AWS_ENDPOINT_URL=http://127.0.0.1:8333.
    format
        Output format: Markdown (md) or JSON (json).
    """
    if not uri.strip():
        return _usage_error("the table URI is empty; pass a path or URI, e.g. ./data/trips")
    try:
        options = parse_storage_options(storage_option)
    except ValueError as exc:
        return _usage_error(str(exc))
    from codeanatomy_assets.delta.doctor import diagnose, exit_code

    report = diagnose(uri, options)
    _write_report(report, format)
    return exit_code(report)


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
