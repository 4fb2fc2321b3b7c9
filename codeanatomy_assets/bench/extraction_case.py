"""The extraction case of ``codeanatomy bench``.

:func:`~codeanatomy_assets.bench.extraction.measure_extraction` (extraction versus a bare ``ast.parse`` of
the same files on all cores) over a chosen tree, with the goal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from codeanatomy_assets.bench.extraction import measure_extraction
from codeanatomy_assets.bench.sources import SourceSelection

GOAL: Final = 0.7
"""``ratio_to_parse`` (bare parse seconds / extraction seconds) at least this."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractionSettings:
    """The tree, the workers (``None``: every core) and the repetitions (best of)."""

    source: SourceSelection = field(default_factory=SourceSelection.whole_stdlib)
    workers: int | None = None
    repeat: int = 3

    @classmethod
    def quick(cls, source: SourceSelection) -> ExtractionSettings:
        """A smaller tree, one repetition."""
        return cls(source=source, repeat=1)


def measure_extraction_case(work_dir: Path, settings: ExtractionSettings) -> dict[str, Any]:
    """:func:`measure_extraction` of the selected tree, plus ``ratio_to_parse`` and the goal."""
    source = settings.source.materialize(work_dir)
    figures = measure_extraction(source, settings.workers, repeat=settings.repeat)
    return {
        "tree": settings.source.describe(),
        **figures,
        "ratio_to_parse": figures["ratio"],
        "goal": GOAL,
        "goal_met": figures["ratio"] >= GOAL,
    }
