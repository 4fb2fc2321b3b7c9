"""One round of the engines case in a child process: every query through every engine, rotated.

The parent writes a :class:`RoundJob` as JSON and runs ``python -m codeanatomy_assets.bench.engines.child
JOB OUT`` (:func:`run_child`); the child writes the round's samples to ``OUT`` and ends with ``os._exit``
(several native libraries share it, and one of them could crash the interpreter at exit).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from codeanatomy_assets.bench.engines.names import DEFAULTS, NATIVE, JobKind
from codeanatomy_assets.bench.engines.native_sources import NativeSource
from codeanatomy_assets.bench.engines.peers import Runner, engine_runners, native_runner
from codeanatomy_assets.bench.engines.results import keep_result, result_path, results_match
from codeanatomy_assets.bench.harness import error_record, rotated, timed

CHILD_TIMEOUT_S: Final = 2 * 3600
_WARMUP_SQL: Final = "SELECT count(*) AS n FROM nation"


@dataclass(frozen=True, slots=True, kw_only=True)
class TpchQuery:
    """A query's SQL and the tables it names (the ones an engine registers for it)."""

    sql: str
    tables: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundJob:
    """What a child runs: one round of the engines (or of the ablation's variants) over every query."""

    kind: JobKind
    round_index: int
    queries: Mapping[str, TpchQuery]
    paths: Mapping[str, str]
    """Per table, the folder ``native`` lists (:class:`NativeSource`)."""
    uris: Mapping[str, str]
    engines: tuple[str, ...] = ()
    variants: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """The ablation's session settings per variant."""
    results_dir: str | None = None
    """Where round 0 keeps the baseline's results for the product's check."""

    @classmethod
    def over(
        cls, sources: Mapping[str, NativeSource], *, kind: JobKind, round_index: int, **fields: Any
    ) -> RoundJob:
        """A job over ``sources``: the native engines read their folders, the peers their Delta tables."""
        return cls(
            kind=kind,
            round_index=round_index,
            paths={name: source.path for name, source in sources.items()},
            uris={name: source.uri for name, source in sources.items()},
            **fields,
        )

    @property
    def check_results(self) -> bool:
        """Round 0 checks every result against the baseline."""
        return self.round_index == 0

    @property
    def baseline(self) -> str:
        """What results are checked against: ``defaults`` in the ablation, ``native`` otherwise."""
        return DEFAULTS if self.kind == JobKind.ABLATION else NATIVE

    def to_row(self) -> dict[str, Any]:
        """The job as JSON-ready data (read back by :meth:`from_row`)."""
        return asdict(self)

    @classmethod
    def from_row(cls, raw: Mapping[str, Any]) -> RoundJob:
        """Inverse of :meth:`to_row`."""
        queries = {
            name: TpchQuery(sql=q["sql"], tables=tuple(q["tables"])) for name, q in raw["queries"].items()
        }
        return cls(
            **{**raw, "kind": JobKind(raw["kind"]), "queries": queries, "engines": tuple(raw["engines"])}
        )

    def runners(self) -> dict[str, Runner]:
        """The runner of each engine, or of each ablation variant (``native`` with its settings)."""
        if self.kind == JobKind.ABLATION:
            return {name: native_runner(self.paths, settings) for name, settings in self.variants.items()}
        return engine_runners(self.engines, self.paths, self.uris)


def _run_once(runner: Runner, sql: str, names: Sequence[str]) -> tuple[dict[str, Any], pa.Table | None]:
    try:
        seconds, table = timed(lambda: runner(sql, names))
    except Exception as exc:  # noqa: BLE001 - an engine that cannot run a query is a result, recorded with its error
        return {"error": error_record(exc)}, None
    return {"ms": seconds * 1000, "rows": table.num_rows}, table


def _check_results(
    samples: Mapping[str, dict[str, Any]], tables: Mapping[str, pa.Table], baseline: str
) -> None:
    """Mark each sample with whether its rows equal the baseline's (``None`` when the baseline failed)."""
    expected = tables.get(baseline)
    for name, sample in samples.items():
        if name in tables:
            sample["matches_baseline"] = None if expected is None else results_match(expected, tables[name])


def _warm_up(runners: Mapping[str, Runner]) -> dict[str, Any]:
    """One untimed query per runner (imports and first-use initialisation); the errors of those that fail."""
    warmup = {}
    for name, runner in runners.items():
        outcome, _ = _run_once(runner, _WARMUP_SQL, ["nation"])
        if "error" in outcome:
            warmup[name] = outcome["error"]
    return warmup


def _run_query(
    job: RoundJob, runners: Mapping[str, Runner], name: str, query: TpchQuery, order: int
) -> dict[str, dict[str, Any]]:
    """``query`` through every runner in rotated order; in round 0 the results checked (and kept)."""
    samples, tables = {}, {}
    for runner in rotated(list(runners), job.round_index + order):
        samples[runner], table = _run_once(runners[runner], query.sql, query.tables)
        if job.check_results and table is not None:
            tables[runner] = table
    if job.check_results:
        _check_results(samples, tables, job.baseline)
        if job.results_dir and job.baseline in tables:
            keep_result(tables[job.baseline], result_path(job.results_dir, name))
    return samples


def run_round(job: RoundJob) -> dict[str, Any]:
    """One round in this process: every query through every engine (or ablation variant), rotated."""
    runners = job.runners()
    warmup = _warm_up(runners)
    results = {
        name: _run_query(job, runners, name, query, order)
        for order, (name, query) in enumerate(job.queries.items())
    }
    return {"round": job.round_index, "warmup_errors": warmup, "queries": results}


def run_child(job: RoundJob, work_dir: Path) -> dict[str, Any]:
    """:func:`run_round` in a child process; a crash or timeout raises ``RuntimeError``."""
    with tempfile.TemporaryDirectory(prefix="engines-", dir=work_dir) as folder:
        job_path, out = Path(folder) / "job.json", Path(folder) / "result.json"
        job_path.write_text(json.dumps(job.to_row()), encoding="utf-8")
        command = [sys.executable, "-m", __name__, str(job_path), str(out)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
        if done.returncode != 0 or not out.is_file():
            tail = " ".join(done.stderr.split())[-1500:]
            raise RuntimeError(f"engines child ({job.kind}) exited with {done.returncode}: {tail}")
        return json.loads(out.read_text("utf-8"))


def _child_main(argv: Sequence[str]) -> None:
    job = RoundJob.from_row(json.loads(Path(argv[0]).read_text("utf-8")))
    Path(argv[1]).write_text(json.dumps(run_round(job), default=str), encoding="utf-8")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip finalization: several native libraries share this process


if __name__ == "__main__":
    _child_main(sys.argv[1:])
