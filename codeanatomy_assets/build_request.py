"""A validated build: which spec, which home, which switches, and where its steps run.

Kept apart from :mod:`codeanatomy_assets.runner` (which imports Dagster) so that ``codeanatomy build`` can
load and check a build, and find it up to date (:mod:`codeanatomy_assets.build_stamp`), before paying for
Dagster's import.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from codeanatomy_assets.celery_settings import CelerySettings, require_dagster_celery
from codeanatomy_assets.engine.session import SPILL_FOLDER, EngineSettings, parse_size
from codeanatomy_assets.extract.tree import discover
from codeanatomy_assets.home import ProjectHome
from codeanatomy_assets.spec import STDLIB_SOURCE, PipelineSpec, load_spec


class Executor(StrEnum):
    """Where the steps of a build run."""

    IN_PROCESS = "in_process"
    MULTIPROCESS = "multiprocess"
    CELERY = "celery"


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildRequest:
    """A validated build: spec, home and switches."""

    spec: PipelineSpec
    home: ProjectHome
    capture: bool = True
    memory_limit: int | None = None
    """Bytes one plan may hold (``--memory-limit``), over the spec's ``[engine] memory_limit``."""
    full: bool = False
    """Re-extract the whole tree and re-run every plan (``--full``); else only what changed."""

    @classmethod
    def resolve(
        cls,
        *,
        source: Path | None = None,
        config: Path | None = None,
        home: Path | None = None,
        lake: str | None = None,
        capture: bool = True,
        memory_limit: str | int | None = None,
        full: bool = False,
    ) -> BuildRequest:
        """Load and validate everything a build needs before anything is written.

        ``lake`` (else ``CODEANATOMY_LAKE_URI``) moves the datasets and the diagnostics store, e.g. to
        ``s3://bucket/prefix`` (storage options: :mod:`codeanatomy_assets.home`); ``memory_limit``
        (``2GB``, ``70%``, bytes) overrides the spec's ``[engine] memory_limit``."""
        limit = None if memory_limit is None else parse_size(memory_limit, source="--memory-limit")
        spec = load_spec(config).with_source(str(source) if source is not None else None)
        if spec.extract is not None:
            discover(spec.extract.source_path())  # raises SourceTreeError before anything is written
        home_ = ProjectHome.resolve(home, lake=lake)
        return cls(spec=spec, home=home_, capture=capture, memory_limit=limit, full=full)

    def engine(self) -> EngineSettings:
        """The engine settings of this build's sessions (what each step's resource computes too)."""
        return dataclasses.replace(
            self.spec.engine,
            memory_limit=self.memory_limit or self.spec.engine.memory_limit,
            spill_dir=self.home.root / SPILL_FOLDER,
        )

    def job_kwargs(self) -> dict[str, Any]:
        """The arguments of :func:`reconstruct_build_job` that rebuild this build's job elsewhere."""
        extract = self.spec.extract
        return {
            "spec": self.spec.source,
            "source": extract.source if extract and extract.source != STDLIB_SOURCE else None,
            "home": str(self.home.root),
            "lake": self.home.lake_uri or "",
            "capture": self.capture,
            "memory_limit": self.memory_limit or 0,
            "full": self.full,
        }


def celery_settings(
    executor: Executor, *, broker: str | None = None, backend: str | None = None
) -> CelerySettings | None:
    """The Celery settings of a build with ``executor`` (``None`` unless it is ``celery``), from the
    arguments else the environment. Raises :class:`ConfigError` (no broker, or no ``dagster-celery``)."""
    if executor is not Executor.CELERY:
        return None
    require_dagster_celery()
    return CelerySettings.resolve(broker=broker, backend=backend)
