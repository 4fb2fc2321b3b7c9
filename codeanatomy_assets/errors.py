"""The exception root of codeanatomy_assets.

Every error this package raises on purpose derives from :class:`CodeAnatomyError`::

    CodeAnatomyError
    ├── ConfigError          a pipeline spec / config file is wrong (file, key, problem)
    ├── SourceTreeError      the source tree to analyse is missing, unreadable or empty
    ├── DatasetError         a dataset cannot be registered or read (dataset, uri)
    │   └── ProtocolIncompatibleError   no provider can read the table's Delta protocol
    ├── PlanError            a plan failed in one of its phases (plan, phase)
    └── DiagnosticsError     a diagnostics sink or the store failed

Each carries the fields a user needs to find the problem, and ``str(err)`` is one line.

Any exception text that becomes a message (an event, a check, the terminal) goes through
:func:`clean_error_text` (or :func:`error_text`): one line, without colour codes or Rust backtraces.
"""

from __future__ import annotations

import re
from typing import Final

from codeanatomy_assets.diagnostics.attributes import EXCEPTION_MESSAGE, EXCEPTION_TYPE

_ANSI_RE: Final = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BACKTRACE_HEADER_RE: Final = re.compile(r"^\s*(?:stack\s+)?backtrace:", re.IGNORECASE)
_FIRST_FRAME_RE: Final = re.compile(r"^\s*0: \S")
_FRAME_RE: Final = re.compile(r"^\s*\d+: \S")
_FRAME_LOCATION_RE: Final = re.compile(r"^\s+at \S")


def _without_backtraces(lines: list[str]) -> list[str]:
    """``lines`` without Rust backtraces: a ``backtrace:`` header or a frame ``0: ...`` starts one, and
    it runs over the numbered frames and their ``at file:line`` locations."""
    kept: list[str] = []
    inside = False
    for line in lines:
        if _BACKTRACE_HEADER_RE.match(line) or _FIRST_FRAME_RE.match(line):
            inside = True
        elif inside and not (_FRAME_RE.match(line) or _FRAME_LOCATION_RE.match(line) or not line.strip()):
            inside = False
        if not inside:
            kept.append(line)
    return kept


def clean_error_text(text: str, limit: int | None = None) -> str:
    """An error text as one message line: colour codes and Rust backtrace frames (printed by deltalake and
    DataFusion when ``RUST_BACKTRACE`` is set) removed, whitespace collapsed, cut at ``limit`` characters.

    >>> clean_error_text("Kernel error: bad\\n   0: <unknown>\\n  12: start_thread\\n     at ./p.c:4:8")
    'Kernel error: bad'
    >>> clean_error_text("Optimizer rule failed\\ncaused by\\nArrow error: \\x1b[31mCast\\x1b[0m", limit=30)
    'Optimizer rule failed caused…'
    """
    flat = " ".join(" ".join(_without_backtraces(_ANSI_RE.sub("", text).splitlines())).split())
    return flat if limit is None or len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def error_text(exc: BaseException, limit: int | None = None) -> str:
    """``str(exc)`` as one clean message line (:func:`clean_error_text`)."""
    return clean_error_text(str(exc), limit)


def exception_text(exc: BaseException, limit: int | None = 400) -> str:
    """``Type: message`` of an exception, the message cleaned and cut at ``limit`` (the one-line form that
    goes into diagnostic messages).

    >>> exception_text(KeyError("x"))
    "KeyError: 'x'"
    """
    return f"{type(exc).__name__}: {error_text(exc, limit)}"


def exception_attributes(exc: BaseException, limit: int | None = 400) -> dict[str, str]:
    """The OpenTelemetry ``exception.type`` and ``exception.message`` attributes of ``exc``: the one place
    event payloads, span attributes and findings get them from.

    >>> exception_attributes(ValueError("bad\\n   0: <unknown>"))
    {'exception.type': 'ValueError', 'exception.message': 'bad'}
    """
    return {EXCEPTION_TYPE: type(exc).__name__, EXCEPTION_MESSAGE: error_text(exc, limit)}


class CodeAnatomyError(Exception):
    """Root of every error raised on purpose by codeanatomy_assets."""


class ConfigError(CodeAnatomyError):
    """A pipeline spec or configuration file is invalid."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None) -> None:
        self.source = source
        self.key = key
        where = ": ".join(part for part in (source, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class SourceTreeError(CodeAnatomyError):
    """The source tree to analyse is missing, unreadable or holds no Python files."""

    def __init__(self, message: str, *, path: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class DatasetError(CodeAnatomyError):
    """A dataset cannot be registered or read."""

    def __init__(self, message: str, *, dataset: str, uri: str | None = None) -> None:
        self.dataset = dataset
        self.uri = uri
        self.reason = message
        """What is wrong, without the dataset and uri (``str(err)`` has them)."""
        where = f"dataset {dataset!r}" + (f" ({uri})" if uri else "")
        super().__init__(f"{where}: {message}")


class ProtocolIncompatibleError(DatasetError):
    """No supported provider can read the table's Delta protocol correctly."""

    def __init__(
        self, message: str, *, dataset: str, uri: str | None = None, unsupported: tuple[str, ...] = ()
    ) -> None:
        self.unsupported = unsupported
        super().__init__(message, dataset=dataset, uri=uri)


class PlanError(CodeAnatomyError):
    """A plan failed in one of its phases (logical, optimized, physical, execute, write)."""

    def __init__(self, message: str, *, plan: str, phase: str) -> None:
        self.plan = plan
        self.phase = phase
        self.reason = message
        """What went wrong, without the plan and phase (``str(err)`` has them)."""
        super().__init__(f"plan {plan!r} failed in phase {phase}: {message}")


class DiagnosticsError(CodeAnatomyError):
    """A diagnostics sink or the durable store failed."""
