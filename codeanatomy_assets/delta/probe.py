"""The isolated ``pyarrow_dataset`` read probe: ``python -m codeanatomy_assets.delta.probe``, a child process.

A DataFusion query over a pyarrow dataset that stops early (LIMIT) or fails can abort (exit 134) or hang the
interpreter at exit (:mod:`codeanatomy_assets.delta.provider_probe`), so registration runs this probe in a
child process. The request (``uri``, ``storage_options``, ``rows``) is read as JSON from stdin; the answer
is one ``PROBE_RESULT <json>`` line on stdout (``{"ok": true, "rows": n}``, or the error's type and
text). The engines are imported inside the probe, so that a failure to import them is an answer too.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any, Final

PROBE_RESULT_PREFIX: Final = "PROBE_RESULT "
"""Starts the child's one answer line on stdout (JSON follows)."""


def main() -> None:
    """Answer one probe request (stdin) with one ``PROBE_RESULT`` line (stdout), then exit at once."""
    args = json.loads(sys.stdin.read())
    result: dict[str, Any] = {"ok": False}
    try:
        result = {"ok": True, "rows": _child_dataset_probe(args)}
    except BaseException as exc:  # noqa: BLE001 - whatever ends the probe is its answer to the parent
        result = {"ok": False, "error_type": type(exc).__name__, "error": str(exc)[:8000]}
    sys.stdout.write(PROBE_RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    # Skip interpreter finalization: the pyarrow-dataset path may abort there (see the module docstring).
    os._exit(0)


def _child_dataset_probe(args: Mapping[str, Any]) -> int:
    """The body of the isolated ``pyarrow_dataset`` probe (runs in the child process)."""
    import datafusion

    from codeanatomy_assets.delta.mode_registration import build_pyarrow_dataset, open_table
    from codeanatomy_assets.delta.provider_probe import probe_sql

    table = open_table(args["uri"], args.get("storage_options") or None)
    ctx = datafusion.SessionContext()
    ctx.register_dataset("probe", build_pyarrow_dataset(table, args["uri"]))
    return probe_sql(ctx, "probe", int(args["rows"]))


if __name__ == "__main__":
    main()
