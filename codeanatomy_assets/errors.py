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
"""

from __future__ import annotations


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
        super().__init__(f"plan {plan!r} failed in phase {phase}: {message}")


class DiagnosticsError(CodeAnatomyError):
    """A diagnostics sink or the durable store failed."""
