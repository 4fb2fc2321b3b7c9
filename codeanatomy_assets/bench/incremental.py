"""Incremental rebuilds against full ones, as a user runs them: ``codeanatomy build`` in a subprocess.

A copy of the source tree (the whole standard library by default: a build analyses its tree in place, and
this case edits it) is built once; then each round runs, in an order that rotates per round:

- ``full``: ``codeanatomy build --full`` (every file parsed, every table rewritten, every plan run);
- ``one_file``: one file edited (a function appended, different text each round), then ``codeanatomy build``;
- ``no_change``: ``codeanatomy build`` with nothing changed: it finds the build up to date and launches
  no run (:mod:`codeanatomy_assets.build_stamp`);
- ``no_change_run``: ``codeanatomy build --force`` with nothing changed: the Dagster run is launched anyway
  (what a run launched from Dagster costs), parses nothing and skips every plan.

Each variant's median wall time (process start to exit: imports, Dagster instance, run, report) is compared
with the full build's (the goals: one file <= 0.25x, no change <= 0.15x). Every build must succeed; every
``one_file`` and ``no_change_run`` build must have extracted incrementally (``extract_rebuild_v1``) and
every ``no_change`` build must have been found up to date (``build_up_to_date_v1``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from codeanatomy_assets.bench.harness import median, ratio, rotated, rounded
from codeanatomy_assets.bench.sources import SourceSelection
from codeanatomy_assets.diagnostics.event_names import BUILD_UP_TO_DATE, EXTRACT_REBUILD
from codeanatomy_assets.extract.tree import DEFAULT_EXCLUDED_DIRS, stdlib_source
from codeanatomy_assets.home import ProjectHome

VARIANTS: Final = ("full", "one_file", "no_change", "no_change_run")
_ARGS: Final = {"full": ("--full",), "no_change_run": ("--force",)}
GOAL_ONE_FILE: Final = 0.25
GOAL_NO_CHANGE: Final = 0.15
EDITED_FILE: Final = "json/encoder.py"
"""The file the ``one_file`` variant edits (in every selection the case uses)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IncrementalSettings:
    """Which tree (``None``: a copy of the whole standard library) and how many rounds."""

    source: SourceSelection | None = None
    rounds: int = 5
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def quick(cls) -> IncrementalSettings:
        return cls(source=SourceSelection.subset(("json", "email", "http", "urllib", "logging")), rounds=3)


def _tree(work_dir: Path, settings: IncrementalSettings) -> Path:
    target = work_dir / "incremental-tree"
    shutil.rmtree(target, ignore_errors=True)
    if settings.source is not None:
        return settings.source.materialize(target.parent / "incremental-subset")
    ignored = shutil.ignore_patterns(*DEFAULT_EXCLUDED_DIRS, "*.pyc")
    shutil.copytree(stdlib_source(), target, ignore=ignored)
    return target


def _build(tree: Path, home: Path, *extra: str) -> float:
    """Seconds of one ``codeanatomy build`` (raises when it fails)."""
    command = [sys.executable, "-m", "codeanatomy_assets.cli.app", "build", "--source", str(tree)]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--home", str(home), *extra],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=home.parent,
        env={**os.environ, "OTEL_SDK_DISABLED": "true"},
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: a WARN gate or check (the stdlib has files that do not parse)
        raise RuntimeError(
            f"codeanatomy build {' '.join(extra)} exited {done.returncode}: {done.stderr[-800:]}"
        )
    return seconds


def _edit(tree: Path, round_index: int) -> None:
    path = tree / EDITED_FILE
    path.write_text(path.read_text() + f"\n\ndef _bench_round_{round_index}():\n    return {round_index}\n")


def _round(tree: Path, home: Path, round_index: int) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for variant in rotated(list(VARIANTS), round_index):
        if variant == "one_file":
            _edit(tree, round_index)
        seconds[variant] = _build(tree, home, *_ARGS.get(variant, ()))
    return seconds


def measure_incremental(work_dir: Path, settings: IncrementalSettings) -> dict[str, Any]:
    """The medians of each variant over the rounds and their ratios to the full build."""
    tree = _tree(work_dir, settings)
    home = work_dir / "incremental-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    first = _build(tree, home)
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for index in range(settings.rounds):
        for variant, seconds in _round(tree, home, index).items():
            samples[variant].append(seconds)
    modes = _rebuild_modes(home)
    if modes.get("incremental", 0) < 2 * settings.rounds or modes.get("up_to_date", 0) < settings.rounds:
        raise RuntimeError(f"the builds without --full were not all incremental or up to date: {modes}")
    medians = {v: median(s) for v, s in samples.items()}
    one_file = ratio(medians["one_file"], medians["full"])
    no_change = ratio(medians["no_change"], medians["full"])
    return {
        "tree": settings.source.describe() if settings.source else "stdlib (whole, copied)",
        "rounds": settings.rounds,
        "first_build_seconds": rounded(first),
        "median_seconds": {v: rounded(m) for v, m in medians.items()},
        "samples_seconds": {v: [rounded(x) for x in s] for v, s in samples.items()},
        "one_file_over_full": rounded(one_file),
        "no_change_over_full": rounded(no_change),
        "no_change_run_over_full": rounded(ratio(medians["no_change_run"], medians["full"])),
        "goal_met": one_file is not None
        and no_change is not None
        and one_file <= GOAL_ONE_FILE
        and no_change <= GOAL_NO_CHANGE,
        "load_average": list(os.getloadavg()),
        "rebuild_modes": modes,
    }


def _rebuild_modes(home: Path) -> dict[str, int]:
    """How many builds of ``home`` extracted fully, how many incrementally (``extract_rebuild_v1``), and
    how many found themselves up to date (``build_up_to_date_v1``)."""
    store = ProjectHome.resolve(home).diagnostics_store()
    modes: dict[str, int] = {}
    for event in store.read_events(names=[EXTRACT_REBUILD, BUILD_UP_TO_DATE]):
        modes[event.code or "?"] = modes.get(event.code or "?", 0) + 1
    return modes
