"""TPC-H on an S3 server: ``delta_pruned_parquet`` against the other readers (``docs/benchmarks.md``).

Run from the repository root (starts SeaweedFS on 127.0.0.1, copies TPC-H into a bucket, writes JSON)::

    PYTHONPATH=. .venv/bin/python -m codeanatomy_assets_tests.bench_s3_pruned --scale 0.1 --files 8 \\
        --rounds 3 --out s3-pruned.json

Sessions, each registered through ``register_dataset`` restricted to one mode (no fallback, no probe):
``delta_pruned_parquet`` and ``pyarrow_dataset`` (the mode the policy fell back to on S3 before the pruned
reader served object stores) on the bucket, ``delta_table_provider`` on the bucket (it registers, then
every query fails: the provider does not use the session's object stores) and on the local copy of the
same tables (a reference: local disk, not S3). Per query: an untimed pass with scan units (rows, files
read, Delta's candidates), then ``--rounds`` timed rounds in rotated order of ``execute_plan`` with
``CompileOptions.off`` (planning, plan-time pruning, execution); the median. The process ends with
``os._exit`` (a DataFusion query over a pyarrow dataset can abort the interpreter at exit).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from datafusion import SessionContext

from codeanatomy_assets.bench.harness import geomean, load_average, machine_info, rounded, timed
from codeanatomy_assets.bench.provider_modes import ModeSession, measure_query
from codeanatomy_assets.bench.tpch import QUERY_NAMES, cached_tpch
from codeanatomy_assets.delta.provider import ProviderMode
from codeanatomy_assets.delta.registration import register_dataset
from codeanatomy_assets.delta.registration_records import RegistrationPolicy
from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
from codeanatomy_assets_tests.servers import S3Endpoint, seaweedfs

BUCKET = "tpch"
SESSIONS = (
    ("s3 delta_pruned_parquet", ProviderMode.DELTA_PRUNED_PARQUET, True),
    ("s3 pyarrow_dataset", ProviderMode.PYARROW_DATASET, True),
    ("s3 delta_table_provider", ProviderMode.DELTA_TABLE_PROVIDER, True),
    ("local delta_table_provider", ProviderMode.DELTA_TABLE_PROVIDER, False),
)
"""(name, mode, on the bucket)."""


def _open(name: str, mode: ProviderMode, uris: Mapping[str, str], options: Mapping[str, str]) -> ModeSession:
    session = ModeSession(mode=name, ctx=SessionContext())
    policy = RegistrationPolicy(modes=(mode,), allow_fallback=False)
    sink = DiagnosticsCollector()

    def register() -> dict[str, Any]:
        return {
            table: register_dataset(
                session.ctx,
                name=table,
                uri=uri,
                storage_options=dict(options) or None,
                run_id="bench",
                sink=sink,
                probe=False,
                policy=policy,
            ).registered
            for table, uri in uris.items()
        }

    seconds, session.tables = timed(register)
    session.registration_ms = seconds * 1000
    return session


def _upload(local: Mapping[str, str], endpoint: S3Endpoint) -> dict[str, str]:
    remote = {name: f"s3://{BUCKET}/{name}" for name in local}
    for name, path in local.items():
        pafs.copy_files(
            path, remote[name].removeprefix("s3://"), destination_filesystem=endpoint.filesystem()
        )
    return remote


def _summary(name: str, per_query: Mapping[str, Mapping[str, Any]], reference: str) -> dict[str, Any]:
    rows = {q: r.get(name, {}) for q, r in per_query.items()}
    ok = {q: r for q, r in rows.items() if "ms_median" in r}
    ratios = [r["ms_median"] / per_query[q][reference]["ms_median"] for q, r in ok.items()]
    counted = [r for r in ok.values() if r.get("files_read") is not None]
    return {
        "queries_ok": len(ok),
        "queries_failed": sorted(q for q, r in rows.items() if "error" in r),
        "first_error": next((r["error"] for r in rows.values() if "error" in r), None),
        "geomean_ratio": rounded(geomean(ratios)),
        "files_read_total": sum(r["files_read"] for r in counted),
        "delta_candidate_files_total": sum(r.get("delta_candidate_files") or 0 for r in counted),
        "files_total": sum(r["files_total"] or 0 for r in counted),
        "row_count_mismatches": sorted(
            q for q, r in ok.items() if r.get("rows") != per_query[q][reference].get("rows")
        ),
        "queries_with_file_counts": len(counted),
    }


def run(scale: float, files: int, rounds: int, queries: Sequence[str], cache: Path) -> dict[str, Any]:
    """Every query in every session on a fresh SeaweedFS; the figures as JSON-ready data."""
    local, _ = cached_tpch(cache, scale=scale, files_per_table=files)
    started_load = load_average()
    with (
        tempfile.TemporaryDirectory() as work,
        seaweedfs(Path(work), access_key="bench", secret_key="bench-s3") as s3,
    ):
        s3.create_bucket(BUCKET)
        remote = _upload(local, s3)
        sessions = [
            _open(name, mode, remote if on_s3 else local, s3.storage_options() if on_s3 else {})
            for name, mode, on_s3 in SESSIONS
        ]
        per_query = {q: measure_query(sessions, q, rounds) for q in queries}
    reference = SESSIONS[0][0]
    return {
        "scale": scale,
        "files_per_table": files,
        "rounds": rounds,
        "load_average_start": started_load,
        "load_average_end": load_average(),
        "machine": machine_info(),
        "registration_ms": {s.mode: rounded(s.registration_ms) for s in sessions},
        "summary": {s.mode: _summary(s.mode, per_query, reference) for s in sessions},
        "queries": per_query,
    }


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--files", type=int, default=8, help="files per table")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--query", action="append", choices=QUERY_NAMES, help="default: all 22")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/codeanatomy-bench").expanduser())
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    data = run(args.scale, args.files, args.rounds, tuple(args.query or QUERY_NAMES), args.cache_dir)
    args.out.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    print(json.dumps(data["summary"], indent=2, default=str))
    print(args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(0)  # a query over a pyarrow dataset can abort the interpreter at exit
