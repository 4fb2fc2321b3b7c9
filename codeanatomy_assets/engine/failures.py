"""Plan failures: a low-cardinality ``error.type`` for an exception, its one-line summary, and the
``warn`` event of a side step (scan unit analysis, the artifact hook) that failed while the plan stood."""

from __future__ import annotations

import re
from typing import Any, Final

from codeanatomy_assets.diagnostics import attributes as attr
from codeanatomy_assets.diagnostics.events import DiagnosticEvent
from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
from codeanatomy_assets.errors import error_text, exception_attributes

SUMMARY_LIMIT: Final = 500
"""Characters of an error message kept in one-line summaries."""

_DF_ERROR_RE: Final = re.compile(
    r"^(?P<kind>SQL error|Schema error|Error during planning|Execution error|Arrow error|Internal error|"
    r"Invalid regex|This feature is not implemented|[A-Z][A-Za-z]*(?: [A-Za-z]+)? error)"
)


def error_type(exc: BaseException) -> str:
    """A low-cardinality ``error.type``: the kind of DataFusion's root cause when its message names one.

    >>> error_type(Exception("DataFusion error: Arrow error: Divide by zero error"))
    'datafusion.arrow_error'
    >>> error_type(Exception("DataFusion error: Optimizer rule 'x' failed caused by Arrow error: Cast error"))
    'datafusion.arrow_error'
    >>> error_type(KeyError("x"))
    'KeyError'
    """
    if type(exc) in {Exception, ValueError, RuntimeError}:
        # The root cause is last: "... failed caused by Arrow error: ...".
        root = re.split(r"\bcaused by\b", str(exc))[-1].strip()
        root = re.sub(r"^DataFusion error:\s*", "", root)
        match = _DF_ERROR_RE.match(root)
        if match is not None:
            return "datafusion." + re.sub(r"\W+", "_", match["kind"].lower()).strip("_")
    module = type(exc).__module__
    return type(exc).__qualname__ if module == "builtins" else f"{module}.{type(exc).__qualname__}"


def error_summary(exc: BaseException) -> str:
    """``error.type: message``, the (multi-line) DataFusion message as one clean, shortened line.

    >>> error_summary(ValueError("bad\\nvalue"))
    'ValueError: bad value'
    """
    return f"{error_type(exc)}: {error_text(exc, SUMMARY_LIMIT)}"


def side_step_failed(
    exc: BaseException,
    *,
    name: str,
    step: str,
    run_id: str,
    plan: str,
    category: Category,
    trace_id: str | None = None,
    span_id: str | None = None,
) -> DiagnosticEvent:
    """The ``warn`` event of a side step of a plan that raised (the plan's result stands)."""
    payload: dict[str, Any] = {attr.ERROR_TYPE: error_type(exc), **exception_attributes(exc, None)}
    return DiagnosticEvent(
        name=name,
        run_id=run_id,
        severity=Severity.WARN,
        category=category,
        plan=plan,
        trace_id=trace_id,
        span_id=span_id,
        message=f"{step} failed: {error_summary(exc)}",
        payload=payload,
    )
