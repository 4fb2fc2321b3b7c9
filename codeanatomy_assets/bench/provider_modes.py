"""TPC-H through every provider mode the project supports, against a union of per-file Parquet reads.

Data: TPC-H at ``scale`` from :func:`~codeanatomy_assets.bench.tpch.generate_tpch_delta` (``lineitem``
clustered by ``l_shipdate``, ``orders`` by ``o_orderdate``, ``files_per_table`` files per table), cached
under ``<cache_dir>/tpch/sf<scale>-files<n>`` and reused while its ``_READY`` marker exists
(:func:`~codeanatomy_assets.bench.tpch.cached_tpch`).

Modes, each in its own ``SessionContext`` registered through the project's own code:

- ``union_of_read_parquet`` (the baseline of this case's ratios, :data:`BASELINE`):
  :func:`~codeanatomy_assets.bench.tpch.register_native_tables`, a view that unions one DataFusion
  ``read_parquet`` per live file of the Delta table. It is *not* DataFusion's native speed: one listing
  table over the same files is faster; the ``engines`` case (:mod:`codeanatomy_assets.bench.engines`)
  measures against that one;
- every mode of :data:`~codeanatomy_assets.delta.protocol.READ_MODES` (today ``delta_pruned_parquet``,
  ``delta_table_provider``, ``pyarrow_dataset``, ``delta_scan_stream``):
  :func:`~codeanatomy_assets.delta.registration.register_dataset` restricted to that one mode (no
  fallback, no probe); ``pyarrow_dataset`` is ``register_dataset(dt.to_pyarrow_dataset())``, never
  ``to_pyarrow_table`` (it aborts the process at exit); ``delta_scan_stream`` materializes
  ``DeltaTable.scan()`` into memory at registration, so its ``registration_ms`` is large and its queries
  read memory;
- ``default_policy``: ``register_dataset`` with the default policy and probes, as a build's dataset
  steps do; ``chosen_modes`` says what it picked per table.

Per query, one untimed pass per mode through :func:`~codeanatomy_assets.engine.plan.execute_plan` with
only scan units on (it also warms caches, and gives the row count and the files each scan read versus
what Delta's statistics could skip); then ``repeats`` timed rounds with the modes in rotated order, each
``execute_plan`` with :meth:`CompileOptions.off` — the build's own path: planning, the plan-time file
pruning of ``delta_pruned_parquet`` (done inside ``execute_plan``), execution. A query that fails in a
mode is recorded with its error.

The case runs in a child process (:func:`measure_provider_modes_isolated`): DataFusion queries over a
pyarrow dataset can abort or hang the interpreter at exit (``delta/registration.py``), and the
child ends with ``os._exit`` after writing its JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from datafusion import SessionContext

from codeanatomy_assets.bench.harness import (
    error_record,
    geomean,
    median,
    ratio,
    rotated,
    rounded,
    timed,
)
from codeanatomy_assets.bench.tpch import TpchSettings, load_query, register_native_tables
from codeanatomy_assets.delta.protocol import READ_MODES
from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
from codeanatomy_assets.delta.registration import register_dataset
from codeanatomy_assets.delta.registration_records import RegistrationPolicy
from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
from codeanatomy_assets.engine.options import CompileOptions
from codeanatomy_assets.engine.plan import execute_plan

BASELINE: Final = "union_of_read_parquet"
"""The baseline of this case: a view over one ``read_parquet`` per live file (not DataFusion native)."""
DEFAULT_POLICY: Final = "default_policy"
EXPLICIT_MODES: Final = READ_MODES
"""Every mode registration can serve a table with (a mode added to the policy is benchmarked too)."""
MODES: Final = (BASELINE, *(m.value for m in EXPLICIT_MODES), DEFAULT_POLICY)
CHILD_TIMEOUT_S: Final = 4 * 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderModeSettings(TpchSettings):
    """The data and queries (:class:`TpchSettings`), the repetitions and the modes."""

    repeats: int = 5
    modes: tuple[str, ...] = MODES

    @classmethod
    def quick(cls, cache_dir: Path) -> ProviderModeSettings:
        """Scale 0.1, 12 files per table, median of 3."""
        return cls(scale=0.1, files_per_table=12, repeats=3, cache_dir=str(cache_dir))

    @classmethod
    def tiny(cls, cache_dir: Path) -> ProviderModeSettings:
        """For tests: scale 0.01 and two queries."""
        return cls(scale=0.01, files_per_table=3, repeats=1, queries=("q1", "q6"), cache_dir=str(cache_dir))

    def to_json(self) -> str:
        """The settings for the child process."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ProviderModeSettings:
        """Inverse of :meth:`to_json`."""
        raw = json.loads(text)
        return cls(**{**raw, "queries": tuple(raw["queries"]), "modes": tuple(raw["modes"])})


# ------------------------------------------------------------------------------------------ sessions


@dataclass(slots=True, kw_only=True)
class ModeSession:
    """One mode's session: its registered tables, or why it could not be registered."""

    mode: str
    ctx: SessionContext
    tables: dict[str, RegisteredTable] = field(default_factory=dict)
    chosen: dict[str, str] = field(default_factory=dict)
    registration_ms: float | None = None
    error: dict[str, str] | None = None


def _register_policy(
    ctx: SessionContext, uris: Mapping[str, str], policy: RegistrationPolicy | None, *, probe: bool
) -> dict[str, RegisteredTable]:
    sink = DiagnosticsCollector()
    return {
        name: register_dataset(
            ctx, name=name, uri=uri, run_id="bench", sink=sink, probe=probe, policy=policy
        ).registered
        for name, uri in uris.items()
    }


def _registrar(mode: str) -> Callable[[SessionContext, Mapping[str, str]], dict[str, RegisteredTable]]:
    if mode == BASELINE:
        return register_native_tables
    if mode == DEFAULT_POLICY:
        return lambda ctx, uris: _register_policy(ctx, uris, None, probe=True)
    only = RegistrationPolicy(modes=(ProviderMode(mode),), allow_fallback=False)
    return lambda ctx, uris: _register_policy(ctx, uris, only, probe=False)


def open_session(mode: str, uris: Mapping[str, str]) -> ModeSession:
    """Register every table in ``mode``; a failure is kept on the session (its queries are not run)."""
    session = ModeSession(mode=mode, ctx=SessionContext())
    try:
        seconds, tables = timed(lambda: _registrar(mode)(session.ctx, uris))
    except Exception as exc:  # noqa: BLE001 - a mode that cannot register is a result, recorded per mode
        session.error = error_record(exc)
        return session
    session.tables = tables
    session.registration_ms = seconds * 1000
    session.chosen = {name: table.provider_mode.value for name, table in sorted(tables.items())}
    return session


# ------------------------------------------------------------------------------------------ queries


def _scan_options() -> CompileOptions:
    """Only scan units: the untimed pass that counts files read against files Delta could skip."""
    return CompileOptions(
        run_id="bench",
        fingerprints=False,
        capture_plan_artifacts=False,
        explain_analyze=False,
        capture_substrait=False,
        capture_graphviz=False,
        capture_unparsed_sql=False,
        scan_units=True,
    )


def _sum_field(units: Sequence[Any], name: str) -> int | None:
    values = [getattr(u, name) for u in units]
    return None if not values or any(v is None for v in values) else sum(values)


def _file_counts(units: Sequence[Any]) -> dict[str, int | None]:
    """The scans of one query: files in the tables, files read, and what Delta's statistics say."""
    return {
        "scans": len(units),
        "files_total": _sum_field(units, "total_files"),
        "files_read": _sum_field(units, "candidate_files"),
        "delta_candidate_files": _sum_field(units, "delta_candidate_files"),
        "delta_prunable_files": _sum_field(units, "delta_prunable_files"),
    }


def untimed_pass(session: ModeSession, query: str, sql: str) -> dict[str, Any]:
    """Run ``query`` once with scan units: rows and files, or the error."""
    try:
        execution = execute_plan(
            session.ctx,
            name=query,
            sql=sql,
            options=_scan_options(),
            sink=DiagnosticsCollector(),
            tables=session.tables,
        )
    except Exception as exc:  # noqa: BLE001 - a query failing in one mode is recorded, the other modes still run
        return {"error": error_record(exc)}
    return {"rows": execution.table.num_rows, **_file_counts(execution.scan_units)}


def _execute(session: ModeSession, query: str, sql: str) -> Callable[[], object]:
    """The timed unit: the build's plan path with every capture off."""
    return lambda: execute_plan(
        session.ctx,
        name=query,
        sql=sql,
        options=CompileOptions.off("bench"),
        sink=DiagnosticsCollector(),
        tables=session.tables,
    )


def measure_query(sessions: Sequence[ModeSession], query: str, repeats: int) -> dict[str, dict[str, Any]]:
    """One query in every session: the untimed pass, then ``repeats`` rotated rounds (median ms)."""
    sql = load_query(query)
    rows = {s.mode: untimed_pass(s, query, sql) for s in sessions if s.error is None}
    runnable = [s for s in sessions if s.mode in rows and "error" not in rows[s.mode]]
    samples: dict[str, list[float]] = {s.mode: [] for s in runnable}
    for index in range(repeats):
        for session in rotated(runnable, index):
            try:
                seconds, _ = timed(_execute(session, query, sql))
            except Exception as exc:  # noqa: BLE001 - a failure on a later round is recorded like a first-pass failure
                rows[session.mode] = {"error": error_record(exc)}
                runnable.remove(session)
                continue
            samples[session.mode].append(seconds)
    for mode, values in samples.items():
        if values and "error" not in rows[mode]:
            rows[mode]["ms_median"] = rounded(median(values) * 1000)
            rows[mode]["ms_samples"] = [rounded(v * 1000) for v in values]
    return _with_ratios(rows)


def _with_ratios(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    baseline = rows.get(BASELINE, {}).get("ms_median")
    baseline_rows = rows.get(BASELINE, {}).get("rows")
    for row in rows.values():
        if "ms_median" in row:
            row["ratio_to_baseline"] = rounded(ratio(row["ms_median"], baseline))
            row["rows_match_baseline"] = None if baseline_rows is None else row.get("rows") == baseline_rows
    return rows


# ------------------------------------------------------------------------------------------- summary


def _has_file_counts(row: Mapping[str, Any]) -> bool:
    return row.get("files_read") is not None and row.get("delta_candidate_files") is not None


def _mode_rows(
    mode: str, per_query: Mapping[str, Mapping[str, Mapping[str, Any]]]
) -> dict[str, Mapping[str, Any]]:
    """The row of ``mode`` per query (an empty row where the query has none)."""
    return {name: q.get(mode, {}) for name, q in per_query.items()}


def summarize_mode(
    session: ModeSession, per_query: Mapping[str, Mapping[str, Mapping[str, Any]]]
) -> dict[str, Any]:
    """One mode over all queries: geometric mean of its ratios to the baseline, failures, registration."""
    rows = _mode_rows(session.mode, per_query)
    ratios = [row["ratio_to_baseline"] for row in rows.values() if row.get("ratio_to_baseline")]
    failed = {name: row["error"] for name, row in rows.items() if "error" in row}
    files = [row for row in rows.values() if _has_file_counts(row)]
    return {
        "geomean_ratio_to_baseline": rounded(geomean(ratios)),
        "files_read_total": sum(row["files_read"] for row in files),
        "delta_candidate_files_total": sum(row["delta_candidate_files"] for row in files),
        "files_compared_queries": len(files),
        "queries_compared": len(ratios),
        "queries_failed": sorted(failed),
        "errors": failed,
        "row_count_mismatches": sorted(
            n for n, row in rows.items() if row.get("rows_match_baseline") is False
        ),
        "registration_ms": rounded(session.registration_ms),
        "chosen_modes": session.chosen,
        "registration_error": session.error,
    }


_DESCRIPTION: Final = {
    "baseline": f"{BASELINE}: a view unioning one read_parquet per live file (not DataFusion's "
    "listing table; see the engines case for that)",
    "timed": "execute_plan with CompileOptions.off: planning, plan-time pruning, execution; "
    "registration separately",
}
"""What the case's figures are ratios to, and what its timing covers (recorded in its JSON)."""


def measure_provider_modes(settings: ProviderModeSettings) -> dict[str, Any]:
    """The whole case in this process (see :func:`measure_provider_modes_isolated`)."""
    uris, generated = settings.cached_data()
    sessions = [open_session(mode, uris) for mode in settings.modes]
    per_query = {query: measure_query(sessions, query, settings.repeats) for query in settings.queries}
    return {
        "scale": settings.scale,
        "files_per_table": settings.files_per_table,
        "repeats": settings.repeats,
        "data": str(Path(uris["lineitem"]).parent),
        "data_generated_now": generated,
        **_DESCRIPTION,
        "queries": per_query,
        **{s.mode: summarize_mode(s, per_query) for s in sessions},
    }


# --------------------------------------------------------------------------------------- isolation


def measure_provider_modes_isolated(settings: ProviderModeSettings, work_dir: Path) -> dict[str, Any]:
    """:func:`measure_provider_modes` in a child process; its crash or timeout raises ``RuntimeError``."""
    with tempfile.TemporaryDirectory(prefix="provider-modes-", dir=work_dir) as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, "-m", __name__, settings.to_json(), str(out)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
        if done.returncode != 0 or not out.is_file():
            tail = " ".join(done.stderr.split())[-1500:]
            raise RuntimeError(f"provider-modes child exited with {done.returncode}: {tail}")
        return json.loads(out.read_text("utf-8"))


def _child_main(argv: Sequence[str]) -> None:
    settings = ProviderModeSettings.from_json(argv[0])
    out = Path(argv[1])
    out.write_text(json.dumps(measure_provider_modes(settings), default=str), encoding="utf-8")
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization: it may abort after pyarrow-dataset queries.
    os._exit(0)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
