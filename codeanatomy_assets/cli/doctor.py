"""``codeanatomy doctor URI``: diagnose one Delta table without a build.

Exit codes: 0 no diagnostic at error severity, 1 errors found, 2 usage error (an empty URI, a malformed
``--storage-option``). Heavy imports happen inside the command so ``codeanatomy --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Literal


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
        print(
            "codeanatomy doctor: the table URI is empty; pass a path or URI, e.g. ./data/trips",
            file=sys.stderr,
        )
        return 2
    try:
        options = parse_storage_options(storage_option)
    except ValueError as exc:
        print(f"codeanatomy doctor: {exc}", file=sys.stderr)
        return 2
    from codeanatomy_assets.delta.doctor import diagnose, exit_code, render_markdown

    report = diagnose(uri, options)
    if format == "json":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(render_markdown(report))
    sys.stdout.flush()
    return exit_code(report)
