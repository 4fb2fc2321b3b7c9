"""One engine's round of the engines case in a child process of its own: every query once, in order.

The parent writes a :class:`RoundJob` as JSON and runs ``python -m codeanatomy_assets.bench.engines.child
JOB OUT`` (:func:`run_child`); the child writes the round's samples to ``OUT`` and ends with ``os._exit``
(a native library could crash the interpreter at exit: deltalake's pyarrow path does).
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
from codeanatomy_assets.bench.engines.peers import Runner, engine_runner, native_runner
from codeanatomy_assets.bench.engines.results import keep_result, read_kept, result_path, results_match
from codeanatomy_assets.bench.harness import error_record, timed

CHILD_TIMEOUT_S: Final = 2 * 3600
_WARMUP_SQL: Final = "SELECT count(*) AS n FROM nation"


@dataclass(frozen=True, slots=True, kw_only=True)
class TpchQuery:
    """A query's SQL and the tables it names (the ones an engine registers for it)."""

    sql: str
    tables: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundJob:
    """What a child runs: one engine (or one ablation variant) over every query, once each, in order, in a
    process of its own, as a build runs its plans."""

    kind: JobKind
    round_index: int
    runner: str
    """The engine, or the ablation variant."""
    queries: Mapping[str, TpchQuery]
    paths: Mapping[str, str]
    """Per table, the folder ``native`` lists (:class:`NativeSource`)."""
    uris: Mapping[str, str]
    settings: Mapping[str, str] = field(default_factory=dict)
    """The ablation variant's session settings."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Variables the child process starts with (an allocator variant of the ablation)."""
    results_dir: str | None = None
    """Where round 0's baseline keeps its results and the other runners' results are checked against them."""

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
        return cls(**{**raw, "kind": JobKind(raw["kind"]), "queries": queries})

    def make_runner(self) -> Runner:
        """The engine's runner, or ``native`` with the ablation variant's settings."""
        if self.kind == JobKind.ABLATION:
            return native_runner(self.paths, self.settings)
        return engine_runner(self.runner, self.paths, self.uris)


def _run_once(runner: Runner, sql: str, names: Sequence[str]) -> tuple[dict[str, Any], pa.Table | None]:
    try:
        seconds, table = timed(lambda: runner(sql, names))
    except Exception as exc:  # noqa: BLE001 - an engine that cannot run a query is a result, recorded with its error
        return {"error": error_record(exc)}, None
    return {"ms": seconds * 1000, "rows": table.num_rows}, table


def _check_result(job: RoundJob, query: str, sample: dict[str, Any], table: pa.Table) -> None:
    """In round 0: the baseline keeps its result; another runner's is checked against the kept one
    (``matches_baseline``; ``None`` when the baseline kept none, having failed)."""
    if job.round_index != 0 or job.results_dir is None:
        return
    path = result_path(job.results_dir, query)
    if job.runner == job.baseline:
        keep_result(table, path)
    else:
        sample["matches_baseline"] = results_match(read_kept(path), table) if path.is_file() else None


def run_round(job: RoundJob) -> dict[str, Any]:
    """One round in this process: an untimed warm-up query (imports, first use), then every query once, in
    order, through the job's runner."""
    runner = job.make_runner()
    warmup, _ = _run_once(runner, _WARMUP_SQL, ["nation"])
    results: dict[str, dict[str, Any]] = {}
    for name, query in job.queries.items():
        sample, table = _run_once(runner, query.sql, query.tables)
        if table is not None:
            _check_result(job, name, sample, table)
        results[name] = {job.runner: sample}
    warmup_errors = {job.runner: warmup["error"]} if "error" in warmup else {}
    return {"round": job.round_index, "warmup_errors": warmup_errors, "queries": results}


def run_child(job: RoundJob, work_dir: Path) -> dict[str, Any]:
    """:func:`run_round` in a child process; a crash or timeout raises ``RuntimeError``."""
    with tempfile.TemporaryDirectory(prefix="engines-", dir=work_dir) as folder:
        job_path, out = Path(folder) / "job.json", Path(folder) / "result.json"
        job_path.write_text(json.dumps(job.to_row()), encoding="utf-8")
        command = [sys.executable, "-m", __name__, str(job_path), str(out)]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            check=False,
            env={**os.environ, **job.environment},
        )
        if done.returncode != 0 or not out.is_file():
            tail = " ".join(done.stderr.split())[-1500:]
            name = f"{job.kind} {job.runner}"
            raise RuntimeError(f"engines child ({name}) exited with {done.returncode}: {tail}")
        return json.loads(out.read_text("utf-8"))


def _child_main(argv: Sequence[str]) -> None:
    job = RoundJob.from_row(json.loads(Path(argv[0]).read_text("utf-8")))
    Path(argv[1]).write_text(json.dumps(run_round(job), default=str), encoding="utf-8")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip finalization: a native library could crash the interpreter at exit


if __name__ == "__main__":
    _child_main(sys.argv[1:])
