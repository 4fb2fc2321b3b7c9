"""The project home: where the lake, the diagnostics store and the Dagster instance live.

Resolved at run time (never at import): ``--home`` flag, else ``CODEANATOMY_HOME``, else ``./.codeanatomy``.

Layout::

    <home>/
      lake/                     Delta datasets written by the build (one folder per dataset/plan)
      lake/_diagnostics/        the durable diagnostics store (append-only Delta tables)
      dagster/                  DAGSTER_HOME of the persistent Dagster instance (dagster.yaml, runs)
      reports/<run_id>/run_diagnostics_report.md
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "CODEANATOMY_HOME"
DEFAULT_HOME = ".codeanatomy"


@dataclass(frozen=True, slots=True)
class ProjectHome:
    """Paths under one project home."""

    root: Path

    @classmethod
    def resolve(
        cls, home: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
    ) -> ProjectHome:
        env = os.environ if env is None else env
        chosen = home or env.get(HOME_ENV) or DEFAULT_HOME
        return cls(Path(chosen).expanduser().resolve())

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def diagnostics(self) -> Path:
        return self.lake / "_diagnostics"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def dataset_uri(self, name: str) -> str:
        """Where the build writes dataset or plan ``name`` (names are validated by the spec)."""
        return str(self.lake / name)

    def ensure(self) -> ProjectHome:
        for path in (self.lake, self.diagnostics, self.dagster_home, self.reports):
            path.mkdir(parents=True, exist_ok=True)
        return self
