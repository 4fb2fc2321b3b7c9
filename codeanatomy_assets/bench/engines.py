"""TPC-H over the same Delta tables: DataFusion native, the engines users pick instead, and the product.

Data: TPC-H at ``scale`` from :func:`~codeanatomy_assets.bench.provider_modes.cached_tpch` (SF 1 with 24
files per table in full mode; ``lineitem`` and ``orders`` clustered by date). Every engine runs the same 22
query files (``bench/queries``) and collects the result into Arrow. Each query's timing starts from nothing
registered, as a build step meets its inputs, and covers registering *the tables the query names*, planning,
execution and collecting:

- ``native`` (the baseline of every ratio): DataFusion's own listing table over exactly the table's live
  files, one scan per table: a fresh ``SessionContext``, ``ctx.register_parquet(name, folder)`` per table,
  then the query. The folder is the table's own when its log records no ``remove`` and its ``*.parquet``
  files are exactly the live files (checked, :func:`native_sources`); otherwise a folder of hard links to
  exactly the live files, built once outside the timing (DataFusion 55's ``register_listing_table`` takes
  one path, not a file list). A table with partition columns, deletion vectors or column mapping cannot be
  read as plain Parquet: the case refuses it rather than compare against a wrong baseline;
- ``native_warm``: the same listing tables registered once per process, outside the timing (an extra
  column: what the registration and the cold session cost);
- ``deltalake_querybuilder``: ``QueryBuilder().register(name, DeltaTable(uri)).execute(sql).read_all()``;
- ``polars_sql``: ``pl.SQLContext({name: pl.scan_delta(uri)}).execute(sql).collect().to_arrow()``;
- ``duckdb_read_parquet``: a new in-memory connection, per table a view
  ``read_parquet([...DeltaTable(uri).file_uris()])`` (exact here: the same check as ``native``), then
  ``con.sql(sql).to_arrow_table()``;
- ``datafusion_delta_provider``: a fresh ``SessionContext``, ``ctx.register_table(name, DeltaTable(uri))``;
- ``product_build`` and ``product_build_no_capture``: the product as a user runs it. A pipeline spec
  (``datasets`` = the tables by uri, ``plans`` = ``tpch_q1`` .. ``tpch_q22`` as ``sql_file`` s) is built with
  ``<venv>/bin/codeanatomy build --config spec.toml --home HOME`` (and ``--no-capture``) as a subprocess;
  per plan, the sum of its recorded phases (``datafusion_plan_phase_v1``: logical, optimized, physical,
  execute; ``--no-capture`` records no separate optimized phase) is the headline figure, and the plan's
  Dagster step duration (``STEP_START`` to ``STEP_SUCCESS`` in the home's instance: registration of the
  inputs, the query, writing the result, the diagnostics flush, Dagster's own work) a second column. The
  phase sum leaves out the registration of the plan's inputs, which ``native`` includes; the step includes
  much more than ``native`` does. Both are reported, each as a ratio to ``native``.

``rounds`` rounds run the engines pass and the two builds in rotated order, reversed in odd rounds
(:func:`round_order`: with three steps, plain rotation would always run the no-capture build right after
the capture build or first; six rounds cover every order), each step after an ``os.sync()`` so the
previous step's writes are not flushed inside the next one's timing; inside the engines pass each query
runs every engine in rotated order. Figures are medians over rounds. The engines pass runs in a child
process (``python -m codeanatomy_assets.bench.engines``) that ends with ``os._exit``: several native
libraries share it, and one of them could crash the interpreter at exit (deltalake's pyarrow path does).

Results are checked: every engine's row count against ``native`` in every round, and in round 0 the row
multiset of every engine and of the product's Delta outputs against ``native``'s (:func:`results_match`:
rows sorted, column names and types ignored, decimals and floats equal within 1e-6 absolute or 1e-9
relative, since DataFusion averages decimals to 6 places where DuckDB and polars return doubles). A
row-count mismatch of any engine, a multiset mismatch of any engine or of the product, or a failed build is
reported in ``result_problems`` and fails the case (its ``error``).

The session-settings ablation (``ablation``): the ``native`` path with one DataFusion setting changed at a
time against the defaults (:data:`ABLATION_SETTINGS`, values equal to the default skipped), in rotated
order per query, ``rounds`` rounds in its own child; the geometric mean of the per-query ratio to the
defaults per setting.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable

from codeanatomy_assets.bench.harness import (
    error_record,
    geomean,
    git_commit,
    load_average,
    machine_info,
    median,
    ratio,
    rotated,
    rounded,
    timed,
)
from codeanatomy_assets.bench.provider_modes import cached_tpch
from codeanatomy_assets.bench.tpch import QUERY_NAMES, TPCH_TABLES, load_query

NATIVE: Final = "native"
NATIVE_WARM: Final = "native_warm"
QUERYBUILDER: Final = "deltalake_querybuilder"
POLARS: Final = "polars_sql"
DUCKDB: Final = "duckdb_read_parquet"
DELTA_PROVIDER: Final = "datafusion_delta_provider"
PEERS: Final = (QUERYBUILDER, POLARS, DUCKDB, DELTA_PROVIDER)
CHILD_ENGINES: Final = (NATIVE, NATIVE_WARM, *PEERS)
"""The engines timed in the child process."""
PRODUCT: Final = "product_build"
PRODUCT_NO_CAPTURE: Final = "product_build_no_capture"
PRODUCT_VARIANTS: Final = {PRODUCT: True, PRODUCT_NO_CAPTURE: False}
"""Each product variant and whether it captures diagnostics."""
ENGINES: Final = (*CHILD_ENGINES, *PRODUCT_VARIANTS)
PLAN_PREFIX: Final = "tpch_"
PHASE_EVENT: Final = "datafusion_plan_phase_v1"
OUTPUT_EVENT: Final = "plan_output_v1"
GOAL_PRODUCT_GEOMEAN: Final = 1.10
GOAL_PRODUCT_MAX: Final = 1.5
GOAL_CAPTURE: Final = 1.05
ABLATION_SETTINGS: Final = {
    "datafusion.execution.parquet.pushdown_filters": ("true", "false"),
    "datafusion.execution.parquet.reorder_filters": ("true", "false"),
    "datafusion.execution.target_partitions": ("1", "2", "4"),
    "datafusion.execution.batch_size": ("8192", "16384", "32768"),
    "datafusion.execution.collect_statistics": ("true", "false"),
}
"""The settings the ablation tries, one at a time; a value equal to the session's default is skipped."""
DEFAULTS: Final = "defaults"
CHILD_TIMEOUT_S: Final = 2 * 3600
BUILD_TIMEOUT_S: Final = 3600
_DROPPED_ENV_PREFIXES: Final = ("CODEANATOMY_", "OTEL_")
_RUN_LINE: Final = re.compile(r"^run (\S+): ")
_COMMENT: Final = re.compile(r"--[^\n]*")


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings:
    """Data size, rounds, queries, peers, and whether the product builds and the ablation run."""

    scale: float = 1.0
    files_per_table: int = 24
    rounds: int = 6
    queries: tuple[str, ...] = QUERY_NAMES
    cache_dir: str = "~/.cache/codeanatomy-bench"
    peers: tuple[str, ...] = PEERS
    product: bool = True
    ablation: bool = True

    @classmethod
    def quick(cls, cache_dir: Path) -> EngineSettings:
        """Scale 0.1 (12 files per table, the provider-modes data), 3 rounds, no ablation."""
        return cls(scale=0.1, files_per_table=12, rounds=3, ablation=False, cache_dir=str(cache_dir))

    @classmethod
    def tiny(cls, cache_dir: Path) -> EngineSettings:
        """For tests: scale 0.01, two queries, one round, the ablation on (its shape is tested)."""
        return cls(scale=0.01, files_per_table=3, rounds=1, queries=("q1", "q6"), cache_dir=str(cache_dir))


# ------------------------------------------------------------------------------------------ queries


def query_tables(sql: str) -> tuple[str, ...]:
    """The TPC-H tables ``sql`` names (outside ``--`` comments), sorted.

    >>> query_tables("select 1 from lineitem, orders -- not part")
    ('lineitem', 'orders')
    """
    words = set(re.findall(r"[a-z_][a-z0-9_]*", _COMMENT.sub(" ", sql).lower()))
    return tuple(sorted(words & set(TPCH_TABLES)))


def plan_name(query: str) -> str:
    """The product plan that runs ``query`` (``q6`` -> ``tpch_q6``)."""
    return f"{PLAN_PREFIX}{query}"


# ------------------------------------------------------------------------------------ result check


def _inexact(dtype: pa.DataType) -> bool:
    return pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)


def _sorted_rows(table: pa.Table, inexact: Sequence[bool]) -> list[tuple[object, ...]]:
    """Rows sorted by their exact columns, then by their inexact ones rounded (ties only)."""
    columns = [column.to_pylist() for column in table.columns]

    def key(row: tuple[object, ...]) -> tuple[str, ...]:
        exact = [repr(v) for v, loose in zip(row, inexact, strict=True) if not loose]
        rough = [
            repr(round(float(v), 2) if isinstance(v, float | Decimal) else v)
            for v, x in zip(row, inexact, strict=True)
            if x
        ]
        return (*exact, *rough)

    return sorted(zip(*columns, strict=True), key=key)


def _same_value(expected: object, actual: object, loose: bool) -> bool:
    if not loose or expected is None or actual is None:
        return expected == actual
    return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-6)  # type: ignore[arg-type]


def results_match(expected: pa.Table, actual: pa.Table) -> bool:
    """Whether two results hold the same rows (a multiset; names and types of columns ignored).

    Decimal and float columns (in either table) compare within 1e-6 absolute or 1e-9 relative.

    >>> results_match(pa.table({"a": [2, 1], "x": [0.5, 0.25]}), pa.table({"b": [1, 2], "y": [0.25, 0.5]}))
    True
    >>> results_match(pa.table({"a": [1]}), pa.table({"a": [2]}))
    False
    """
    if expected.num_columns != actual.num_columns or expected.num_rows != actual.num_rows:
        return False
    inexact = [
        _inexact(a.type) or _inexact(b.type) for a, b in zip(expected.schema, actual.schema, strict=True)
    ]
    pairs = zip(_sorted_rows(expected, inexact), _sorted_rows(actual, inexact), strict=True)
    return all(
        _same_value(e, a, loose)
        for want, got in pairs
        for e, a, loose in zip(want, got, inexact, strict=True)
    )


# ---------------------------------------------------------------------------------- native sources


@dataclass(frozen=True, slots=True, kw_only=True)
class NativeSource:
    """What ``native`` registers for one table, and why that is exactly the table's live files."""

    table: str
    uri: str
    path: str
    """The folder given to ``register_parquet``: the table's own, or a folder of links."""
    live_files: int
    log_removes: int
    folder_is_live_files: bool
    linked: bool


def _log_removes(uri: str) -> int:
    """``remove`` actions in the table's log (JSON commits and checkpoints)."""
    log = Path(uri) / "_delta_log"
    removes = 0
    for path in sorted(log.iterdir()):
        if path.name.endswith(".json"):
            lines = path.read_text("utf-8").splitlines()
            removes += sum(1 for line in lines if line.strip() and "remove" in json.loads(line))
        elif ".checkpoint" in path.name and path.name.endswith(".parquet"):
            removes += pq.read_table(path, columns=["remove"]).column("remove").drop_null().length()
    return removes


def _plain_parquet_problems(table: DeltaTable) -> list[str]:
    """Why the live files read as plain Parquet would not give the table's rows (empty: they do)."""
    problems = []
    if table.metadata().partition_columns:
        problems.append("partition columns")
    features = set(table.protocol().reader_features or ())
    problems += sorted(features & {"deletionVectors", "columnMapping"})
    mode = table.metadata().configuration.get("delta.columnMapping.mode", "none")
    if mode != "none":
        problems.append(f"delta.columnMapping.mode={mode}")
    return problems


def native_sources(uris: Mapping[str, str], link_root: Path) -> dict[str, NativeSource]:
    """For each table, the folder whose listing is exactly its live files (linking them where needed).

    Raises ``ValueError`` for a table whose Parquet files alone do not hold its rows (partitions,
    deletion vectors, column mapping): no listing of them is a correct baseline.
    """
    sources: dict[str, NativeSource] = {}
    for name, uri in uris.items():
        table = DeltaTable(uri)
        problems = _plain_parquet_problems(table)
        if problems:
            raise ValueError(f"{uri}: not readable as plain Parquet ({', '.join(problems)})")
        live = sorted(os.path.realpath(f) for f in table.file_uris())
        listed = sorted(
            os.path.realpath(p) for p in Path(uri).iterdir() if p.is_file() and p.name.endswith(".parquet")
        )
        removes = _log_removes(uri)
        exact = removes == 0 and live == listed
        path = uri if exact else _link_folder(live, link_root / name)
        sources[name] = NativeSource(
            table=name,
            uri=uri,
            path=str(path),
            live_files=len(live),
            log_removes=removes,
            folder_is_live_files=live == listed,
            linked=not exact,
        )
    return sources


def _link_folder(files: Sequence[str], folder: Path) -> Path:
    """A folder holding one hard link (a symbolic one across file systems) per file, named by position."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, target in enumerate(files):
        link = folder / f"{index:06d}.parquet"
        try:
            os.link(target, link)
        except OSError:
            link.symlink_to(target)
    return folder


# ------------------------------------------------------------------------------------------ engines
# The timed units, run in the child process. Each takes the SQL and the tables the query names.

Runner = Callable[[str, Sequence[str]], pa.Table]


def _native_session(paths: Mapping[str, str], names: Iterable[str], settings: Mapping[str, str]) -> Any:
    from datafusion import SessionConfig, SessionContext

    config = SessionConfig()
    for key, value in settings.items():
        config = config.set(key, value)
    ctx = SessionContext(config)
    for name in names:
        ctx.register_parquet(name, paths[name])
    return ctx


def native_runner(paths: Mapping[str, str], settings: Mapping[str, str] | None = None) -> Runner:
    """Fresh session, ``register_parquet`` of each named table, the query collected to Arrow."""
    options = dict(settings or {})
    return lambda sql, names: _native_session(paths, names, options).sql(sql).to_arrow_table()


def native_warm_runner(paths: Mapping[str, str]) -> Runner:
    """One session with every table registered once (outside any timing); only the query is timed."""
    ctx = _native_session(paths, paths, {})
    return lambda sql, names: ctx.sql(sql).to_arrow_table()


def querybuilder_runner(uris: Mapping[str, str]) -> Runner:
    """deltalake's ``QueryBuilder`` over ``DeltaTable`` s opened in the timing."""

    def run(sql: str, names: Sequence[str]) -> pa.Table:
        from deltalake import QueryBuilder

        builder = QueryBuilder()
        for name in names:
            builder.register(name, DeltaTable(uris[name]))
        return pa.table(builder.execute(sql).read_all())

    return run


def polars_runner(uris: Mapping[str, str]) -> Runner:
    """polars ``scan_delta`` frames in a ``SQLContext``, collected."""

    def run(sql: str, names: Sequence[str]) -> pa.Table:
        import polars as pl

        context = pl.SQLContext({name: pl.scan_delta(uris[name]) for name in names})
        return context.execute(sql).collect().to_arrow()

    return run


def duckdb_runner(uris: Mapping[str, str]) -> Runner:
    """DuckDB views over ``read_parquet`` of the live files (exact: see :func:`native_sources`)."""

    def run(sql: str, names: Sequence[str]) -> pa.Table:
        import duckdb

        con = duckdb.connect()
        try:
            for name in names:
                files = ", ".join(_quoted(f) for f in DeltaTable(uris[name]).file_uris())
                con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet([{files}])')
            return con.sql(sql).to_arrow_table()
        finally:
            con.close()

    return run


def _quoted(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def delta_provider_runner(uris: Mapping[str, str]) -> Runner:
    """DataFusion with deltalake's table provider (``ctx.register_table(name, DeltaTable)``)."""

    def run(sql: str, names: Sequence[str]) -> pa.Table:
        from datafusion import SessionContext

        ctx = SessionContext()
        for name in names:
            ctx.register_table(name, DeltaTable(uris[name]))
        return ctx.sql(sql).to_arrow_table()

    return run


def _runners(job: Mapping[str, Any]) -> dict[str, Runner]:
    paths = {name: source["path"] for name, source in job["sources"].items()}
    uris = {name: source["uri"] for name, source in job["sources"].items()}
    if job["kind"] == "ablation":
        return {name: native_runner(paths, settings) for name, settings in job["variants"].items()}
    makers: dict[str, Callable[[], Runner]] = {
        NATIVE: lambda: native_runner(paths),
        NATIVE_WARM: lambda: native_warm_runner(paths),
        QUERYBUILDER: lambda: querybuilder_runner(uris),
        POLARS: lambda: polars_runner(uris),
        DUCKDB: lambda: duckdb_runner(uris),
        DELTA_PROVIDER: lambda: delta_provider_runner(uris),
    }
    return {name: makers[name]() for name in job["engines"]}


# ------------------------------------------------------------------------------------- child round


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


def result_path(folder: str | Path, query: str) -> Path:
    """Where round 0 keeps the baseline's result of ``query`` (Arrow IPC) for the product's check."""
    return Path(folder) / f"{query}.arrow"


def _keep(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def read_kept(path: Path) -> pa.Table:
    """A result kept by :func:`_keep`."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def run_round(job: Mapping[str, Any]) -> dict[str, Any]:
    """One round in this process: every query through every engine (or ablation variant), rotated."""
    runners = _runners(job)
    warmup = {}
    for name, runner in runners.items():  # untimed: imports and first-use initialisation
        outcome, _ = _run_once(runner, "SELECT count(*) AS n FROM nation", ["nation"])
        if "error" in outcome:
            warmup[name] = outcome["error"]
    results: dict[str, dict[str, Any]] = {}
    baseline, keep = job["baseline"], job.get("results_dir")
    for index, (query, spec) in enumerate(job["queries"].items()):
        samples, tables = {}, {}
        for name in rotated(list(runners), job["round"] + index):
            samples[name], table = _run_once(runners[name], spec["sql"], spec["tables"])
            if job["check_results"] and table is not None:
                tables[name] = table
        if job["check_results"]:
            _check_results(samples, tables, baseline)
            if keep and baseline in tables:
                _keep(tables[baseline], result_path(keep, query))
        results[query] = samples
    return {"round": job["round"], "warmup_errors": warmup, "queries": results}


def _run_child(job: Mapping[str, Any], work_dir: Path) -> dict[str, Any]:
    """:func:`run_round` in a child process; a crash or timeout raises ``RuntimeError``."""
    with tempfile.TemporaryDirectory(prefix="engines-", dir=work_dir) as folder:
        job_path, out = Path(folder) / "job.json", Path(folder) / "result.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        command = [sys.executable, "-m", __name__, str(job_path), str(out)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
        if done.returncode != 0 or not out.is_file():
            tail = " ".join(done.stderr.split())[-1500:]
            raise RuntimeError(f"engines child ({job['kind']}) exited with {done.returncode}: {tail}")
        return json.loads(out.read_text("utf-8"))


def _child_main(argv: Sequence[str]) -> None:
    job = json.loads(Path(argv[0]).read_text("utf-8"))
    Path(argv[1]).write_text(json.dumps(run_round(job), default=str), encoding="utf-8")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip finalization: several native libraries share this process


# ----------------------------------------------------------------------------------- product build


def codeanatomy_command() -> list[str]:
    """The ``codeanatomy`` command a user of this environment runs (the venv's script first)."""
    beside = Path(sys.executable).parent / "codeanatomy"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("codeanatomy")
    return [found] if found else [sys.executable, "-m", "codeanatomy_assets.cli.app"]


def write_spec(folder: Path, uris: Mapping[str, str], queries: Iterable[str]) -> Path:
    """A pipeline spec: the tables the queries name as datasets by uri, each query as plan ``tpch_qN``."""
    sql_dir = folder / "sql"
    sql_dir.mkdir(parents=True, exist_ok=True)
    lines = ['[pipeline]\nlabel = "tpch"\n']
    plans, tables = [], set()
    for query in queries:
        sql = load_query(query)
        tables.update(query_tables(sql))
        (sql_dir / f"{query}.sql").write_text(sql, encoding="utf-8")
        plans.append(f'[plans.{plan_name(query)}]\nsql_file = "sql/{query}.sql"\n')
    lines += [f"[datasets.{name}]\nuri = {json.dumps(uris[name])}\n" for name in sorted(tables)]
    path = folder / "spec.toml"
    path.write_text("\n".join([*lines, *plans]), encoding="utf-8")
    return path


def _build_env() -> dict[str, str]:
    """This environment without project-home, lake and OpenTelemetry settings (the flags say where)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV_PREFIXES)}


def run_product_build(spec: Path, home: Path, *, capture: bool) -> dict[str, Any]:
    """One ``codeanatomy build`` subprocess; its exit code, wall time and run id."""
    command = [*codeanatomy_command(), "build", "--config", str(spec), "--home", str(home)]
    if not capture:
        command.append("--no-capture")
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False, env=_build_env()
    )
    wall = time.perf_counter() - started
    run_ids = [m.group(1) for line in done.stdout.splitlines() if (m := _RUN_LINE.match(line))]
    return {
        "command": " ".join(command),
        "exit_code": done.returncode,
        "wall_seconds": rounded(wall),
        "run_id": run_ids[0] if run_ids else None,
        "stderr_tail": " ".join(done.stderr.split())[-800:] if done.returncode else None,
    }


def uncommitted_files() -> list[str] | None:
    """Tracked files with uncommitted changes in this checkout (the builds run the working tree)."""
    where = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return sorted(line[3:] for line in done.stdout.splitlines()) if done.returncode == 0 else None


def _registration_ms(payloads: Iterable[Mapping[str, Any]]) -> float | None:
    """The plan step's input registration time, where some event of the plan records one."""
    found = [float(p[k]) for p in payloads for k in p if k.endswith("registration_ms") and p[k] is not None]
    return sum(found) if found else None


def read_build(home: Path, run_id: str) -> dict[str, dict[str, Any]]:
    """Per plan of the run: phase durations, their sum, output rows and uri, step ms, registration ms."""
    from codeanatomy_assets.bench.orchestration import run_timeline
    from codeanatomy_assets.home import ProjectHome
    from codeanatomy_assets.runner import instance_for

    project = ProjectHome.resolve(home)
    store = project.diagnostics_store()
    plans: dict[str, dict[str, Any]] = {}
    for event in store.read_events(run_id):
        if not event.plan:
            continue
        plan = plans.setdefault(event.plan, {"phases_ms": {}, "payloads": []})
        plan["payloads"].append(event.payload)
        if event.name == PHASE_EVENT and event.payload.get("duration_ms") is not None:
            plan["phases_ms"][event.payload["phase"]] = float(event.payload["duration_ms"])
        elif event.name == OUTPUT_EVENT:
            plan["rows"], plan["uri"] = event.payload.get("rows"), event.payload.get("uri")
    runs = store.read_runs(run_id)
    dagster_run_id = (runs[-1]["metadata"] if runs else {}).get("dagster_run_id") or run_id
    instance = instance_for(project)
    try:
        steps = run_timeline(instance, dagster_run_id).steps
    finally:
        instance.dispose()
    for name, plan in plans.items():
        plan["phase_sum_ms"] = sum(plan["phases_ms"].values()) if plan["phases_ms"] else None
        plan["step_ms"] = (steps[name][1] - steps[name][0]) * 1000 if name in steps else None
        plan["registration_ms"] = _registration_ms(plan.pop("payloads"))
    return plans


def output_matches(uri: str, expected: Path) -> bool | None:
    """Whether a plan's Delta output holds the rows kept at ``expected`` (``None``: nothing kept).

    The output's live files are read with pyarrow's Parquet reader (not deltalake's pyarrow path).
    """
    if not expected.is_file():
        return None
    files, kept = DeltaTable(uri).file_uris(), read_kept(expected)
    return results_match(kept, pq.read_table(files)) if files else kept.num_rows == 0


# ------------------------------------------------------------------------------------------ the case


def ablation_variants() -> dict[str, dict[str, str]]:
    """``defaults`` plus one variant per non-default value of :data:`ABLATION_SETTINGS`."""
    from datafusion import SessionContext

    names = ", ".join(f"'{k}'" for k in ABLATION_SETTINGS)
    rows = SessionContext().sql(
        f"SELECT name, value FROM information_schema.df_settings WHERE name IN ({names})"
    )
    defaults = dict(zip(*rows.to_pydict().values(), strict=True))
    variants: dict[str, dict[str, str]] = {DEFAULTS: {}}
    for key, values in ABLATION_SETTINGS.items():
        for value in values:
            if value != defaults.get(key):
                variants[f"{key.rsplit('.', 1)[-1]}={value}"] = {key: value}
    return variants


def round_order(steps: Sequence[str], round_index: int) -> list[str]:
    """The order of the steps in a round: rotated, and reversed in odd rounds.

    >>> [''.join(round_order("ECN", i)) for i in range(6)]
    ['ECN', 'ENC', 'NEC', 'NCE', 'CNE', 'CEN']
    """
    order = rotated(steps, round_index)
    return order[::-1] if round_index % 2 else order


def _job(
    kind: str, round_index: int, queries: Mapping[str, Any], sources: Mapping[str, NativeSource]
) -> dict:
    """What a child runs: round 0 checks every result against the baseline (``native`` or ``defaults``)."""
    return {
        "kind": kind,
        "round": round_index,
        "queries": queries,
        "sources": {name: {"path": s.path, "uri": s.uri} for name, s in sources.items()},
        "check_results": round_index == 0,
        "baseline": DEFAULTS if kind == "ablation" else NATIVE,
    }


def _append(
    samples: dict[str, dict[str, list[dict[str, Any]]]], query: str, engine: str, sample: dict
) -> None:
    samples.setdefault(query, {}).setdefault(engine, []).append(sample)


def _record_build(
    samples: dict[str, dict[str, list[dict[str, Any]]]],
    builds: list[dict[str, Any]],
    *,
    variant: str,
    build: dict[str, Any],
    home: Path,
    queries: Sequence[str],
    results_dir: Path | None,
) -> None:
    builds.append({"variant": variant, **build})
    plans: dict[str, dict[str, Any]] = {}
    if build["run_id"]:
        try:
            plans = read_build(home, build["run_id"])
        except Exception as exc:  # noqa: BLE001 - the figures of a build that cannot be read back are missing, said so
            build["read_error"] = error_record(exc)
    for query in queries:
        plan = plans.get(plan_name(query))
        if plan is None or plan.get("phase_sum_ms") is None or plan.get("rows") is None:
            message = f"plan {plan_name(query)} has no output or phases in run {build['run_id']}"
            _append(samples, query, variant, {"error": {"error.type": "BuildFailed", "message": message}})
            continue
        sample = {"ms": plan["phase_sum_ms"], "rows": plan["rows"], **plan}
        if results_dir is not None and plan.get("uri"):
            sample["matches_baseline"] = output_matches(plan["uri"], result_path(results_dir, query))
        _append(samples, query, variant, sample)


def _median_of(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return rounded(median(present)) if present else None


def _query_row(runs: Sequence[dict[str, Any]], native: Mapping[str, Any] | None) -> dict[str, Any]:
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        return {"error": errors[0], "failed_rounds": len(errors)}
    row: dict[str, Any] = {
        "ms_median": _median_of(r["ms"] for r in runs),
        "ms_samples": [rounded(r["ms"]) for r in runs],
        "rows": runs[0]["rows"],
    }
    checked = [r["matches_baseline"] for r in runs if "matches_baseline" in r]
    if "phases_ms" in runs[0]:
        phases = sorted({p for r in runs for p in r["phases_ms"]})
        row["phases_ms_median"] = {p: _median_of(r["phases_ms"].get(p) for r in runs) for p in phases}
        row["step_ms_median"] = _median_of(r["step_ms"] for r in runs)
        row["registration_ms_median"] = _median_of(r["registration_ms"] for r in runs)
    if native is not None and "ms_median" in native:
        row["ratio_to_native"] = rounded(ratio(row["ms_median"], native["ms_median"]))
        if "step_ms_median" in row:
            row["step_ratio_to_native"] = rounded(ratio(row["step_ms_median"], native["ms_median"]))
        row["rows_match_native"] = all(r["rows"] == native["rows"] for r in runs)
    if checked:
        row["multiset_match_baseline"] = None if None in checked else all(checked)
    return row


def summarize(
    samples: Mapping[str, Mapping[str, Sequence[dict[str, Any]]]],
    engines: Sequence[str],
    builds: Sequence[Mapping[str, Any]] = (),
) -> dict:
    """Per query and engine the median row; per engine the geometric mean of its ratios to native."""
    per_query: dict[str, dict[str, Any]] = {}
    for query, by_engine in samples.items():
        native = _query_row(by_engine[NATIVE], None) if NATIVE in by_engine else None
        per_query[query] = {engine: _query_row(runs, native) for engine, runs in by_engine.items() if runs}
    return {
        "per_query": per_query,
        "engines": {
            engine: _engine_summary(engine, per_query, builds)
            for engine in engines
            if any(engine in by for by in per_query.values())
        },
    }


def _engine_summary(
    engine: str, per_query: Mapping[str, Mapping[str, Any]], builds: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    rows = {q: by[engine] for q, by in per_query.items() if engine in by}
    ratios = {q: r["ratio_to_native"] for q, r in rows.items() if r.get("ratio_to_native")}
    worst = max(ratios.items(), key=lambda item: item[1], default=(None, None))
    summary: dict[str, Any] = {
        "geomean_ratio_to_native": rounded(geomean(ratios.values())),
        "max_ratio_to_native": {"query": worst[0], "ratio": worst[1]},
        "total_ms": rounded(sum(r["ms_median"] for r in rows.values() if "ms_median" in r), 1),
        "queries_compared": len(ratios),
        "queries_failed": sorted(q for q, r in rows.items() if "error" in r),
        "errors": {q: r["error"] for q, r in rows.items() if "error" in r},
        "row_count_mismatches": sorted(q for q, r in rows.items() if r.get("rows_match_native") is False),
        "multiset_mismatches": sorted(
            q for q, r in rows.items() if r.get("multiset_match_baseline") is False
        ),
    }
    if engine in PRODUCT_VARIANTS:
        steps = [r["step_ratio_to_native"] for r in rows.values() if r.get("step_ratio_to_native")]
        summary["step_geomean_ratio_to_native"] = rounded(geomean(steps))
        summary["step_total_ms"] = rounded(sum(r.get("step_ms_median") or 0 for r in rows.values()), 1)
        walls = [b["wall_seconds"] for b in builds if b["variant"] == engine and b["exit_code"] == 0]
        summary["build_wall_seconds_median"] = _median_of(walls)
    return summary


def _capture_over_no_capture(per_query: Mapping[str, Mapping[str, Any]]) -> float | None:
    ratios = [
        ratio(by[PRODUCT].get("ms_median"), by[PRODUCT_NO_CAPTURE].get("ms_median"))
        for by in per_query.values()
        if PRODUCT in by and PRODUCT_NO_CAPTURE in by
    ]
    return rounded(geomean(r for r in ratios if r))


def summarize_ablation(samples: Mapping[str, Mapping[str, Sequence[dict[str, Any]]]]) -> dict[str, Any]:
    """Per variant: the geometric mean of its per-query ratio to ``defaults``, failures, row mismatches."""
    per_query = {
        query: {variant: _query_row(runs, None) for variant, runs in by.items()}
        for query, by in samples.items()
    }
    variants: dict[str, Any] = {}
    for name in next(iter(per_query.values()), {}):
        ratios, mismatched, failed = [], [], []
        for query, by in per_query.items():
            base, row = by.get(DEFAULTS, {}), by[name]
            if "error" in row or "error" in base:
                failed.append(query)
                continue
            ratios.append(ratio(row["ms_median"], base["ms_median"]))
            if row["rows"] != base["rows"] or row.get("multiset_match_baseline") is False:
                mismatched.append(query)
        variants[name] = {
            "geomean_ratio_to_defaults": rounded(geomean(r for r in ratios if r)),
            "total_ms": rounded(sum(by[name].get("ms_median") or 0 for by in per_query.values()), 1),
            "queries_failed": failed,
            "result_mismatches": mismatched,
        }
    return {"variants": variants, "per_query": per_query}


def _result_problems(
    summary: Mapping[str, Any], builds: Sequence[Mapping[str, Any]], ablation: Mapping[str, Any] | None
) -> list[str]:
    problems = []
    for engine, body in summary["engines"].items():
        if body["row_count_mismatches"]:
            problems.append(
                f"{engine}: row counts differ from native on {', '.join(body['row_count_mismatches'])}"
            )
        if body["multiset_mismatches"]:
            problems.append(f"{engine}: rows differ from native on {', '.join(body['multiset_mismatches'])}")
    for name, variant in ((ablation or {}).get("variants") or {}).items():
        if variant["result_mismatches"]:
            problems.append(
                f"ablation {name}: rows differ from defaults on {', '.join(variant['result_mismatches'])}"
            )
    problems += [
        f"{b['variant']} round build exited {b['exit_code']}: {b.get('stderr_tail')}"
        for b in builds
        if b["exit_code"] != 0
    ]
    return problems


def measure_engines(settings: EngineSettings, work_dir: Path) -> dict[str, Any]:
    """The whole case: data, native sources, ``rounds`` interleaved rounds, the ablation, the summary."""
    load_start, commit, changed = load_average(), git_commit(), uncommitted_files()
    uris, generated = cached_tpch(
        Path(settings.cache_dir), scale=settings.scale, files_per_table=settings.files_per_table
    )
    folder = Path(tempfile.mkdtemp(prefix="engines-", dir=work_dir))
    sources = native_sources(uris, folder / "links")
    sqls = {query: load_query(query) for query in settings.queries}
    queries = {query: {"sql": sql, "tables": list(query_tables(sql))} for query, sql in sqls.items()}
    spec = write_spec(folder / "spec", uris, settings.queries)
    results = folder / "native_results"
    results.mkdir()
    engines = [NATIVE, NATIVE_WARM, *settings.peers]
    steps = ["engines", *(PRODUCT_VARIANTS if settings.product else ())]
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
    builds: list[dict[str, Any]] = []
    round_errors: list[dict[str, Any]] = []
    warmup_errors: dict[str, Any] = {}
    for index in range(settings.rounds):
        for step in round_order(steps, index):
            os.sync()  # untimed: the previous step's writes reach the disk before this step starts
            if step == "engines":
                job = {
                    **_job("engines", index, queries, sources),
                    "engines": engines,
                    "results_dir": str(results),
                }
                try:
                    result = _run_child(job, folder)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    round_errors.append({"round": index, "step": step, **error_record(exc)})
                    continue
                warmup_errors.update(result["warmup_errors"])
                for query, by_engine in result["queries"].items():
                    for engine, sample in by_engine.items():
                        _append(samples, query, engine, sample)
            else:
                home = folder / f"home-{step}"
                build = run_product_build(spec, home, capture=PRODUCT_VARIANTS[step])
                build["round"] = index
                _record_build(
                    samples,
                    builds,
                    variant=step,
                    build=build,
                    home=home,
                    queries=settings.queries,
                    results_dir=results if index == 0 else None,
                )
    summary = summarize(samples, [*engines, *(PRODUCT_VARIANTS if settings.product else ())], builds)
    ablation = _measure_ablation(settings, queries, sources, folder) if settings.ablation else None
    problems = _result_problems(summary, builds, ablation)
    product = summary["engines"].get(PRODUCT) or {}
    figures: dict[str, Any] = {
        "scale": settings.scale,
        "files_per_table": settings.files_per_table,
        "rounds": settings.rounds,
        "queries_run": list(settings.queries),
        "data": str(Path(uris["lineitem"]).parent),
        "data_generated_now": generated,
        "commit": commit,
        "commit_at_end": git_commit(),
        "uncommitted_files_at_start": changed,
        "machine": machine_info(),
        "load_average_at_start": load_start,
        "native_sources": {name: asdict(s) for name, s in sources.items()},
        "spec": spec.read_text("utf-8"),
        "builds": builds,
        "round_errors": round_errors,
        "warmup_errors": warmup_errors,
        **summary,
        "product_geomean_ratio_to_native": product.get("geomean_ratio_to_native"),
        "product_max_ratio_to_native": (product.get("max_ratio_to_native") or {}).get("ratio"),
        "capture_over_no_capture": _capture_over_no_capture(summary["per_query"]),
        "results_equal_native": not problems,
        "result_problems": problems,
        "ablation": ablation,
        "load_average_at_end": load_average(),
    }
    shutil.rmtree(folder, ignore_errors=True)
    if problems or round_errors:
        messages = problems + [f"round {e['round']} {e['step']}: {e['message']}" for e in round_errors]
        figures["error"] = {"error.type": "EnginesResultError", "message": "; ".join(messages)[:1000]}
    return figures


def _measure_ablation(
    settings: EngineSettings, queries: Mapping[str, Any], sources: Mapping[str, NativeSource], folder: Path
) -> dict[str, Any]:
    variants = ablation_variants()
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
    errors = []
    for index in range(settings.rounds):
        job = {**_job("ablation", index, queries, sources), "variants": variants}
        try:
            result = _run_child(job, folder)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            errors.append({"round": index, **error_record(exc)})
            continue
        for query, by_variant in result["queries"].items():
            for variant, sample in by_variant.items():
                _append(samples, query, variant, sample)
    return {"settings": variants, "round_errors": errors, **summarize_ablation(samples)}


if __name__ == "__main__":
    _child_main(sys.argv[1:])
