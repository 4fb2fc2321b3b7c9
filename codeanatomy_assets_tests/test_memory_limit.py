"""Bounded memory from the user's side: ``--memory-limit``, ``[engine]``, spills, and the clear error.

``codeanatomy build`` runs in a subprocess over a real Delta table of 1.1M rows written here. Its peak
RSS is measured by a small parent process (``getrusage(RUSAGE_CHILDREN)``: the largest process it
waited for, the build). Promise (docs/reliability.md): a cross join without a limit ends with
"plan X needs more than N of memory; raise [engine] memory_limit or --memory-limit" and a peak RSS
under 3 GB at ``--memory-limit 2GB``; the other plans' outputs are written; a plan over the pool's
limit that can spill completes, and its spills are recorded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
from deltalake import DeltaTable

from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore

GIB = 2**30
_MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(done.returncode, peak, repr(done.stdout), repr(done.stderr), sep="\\n")
"""


def _spec(folder: Path, big: str, plans: dict[str, str], engine: str = "") -> Path:
    spec = folder / "codeanatomy.toml"
    body = f'[datasets.big]\nuri = "{big}"\n' + "".join(
        f'[plans.{name}]\nsql = "{sql}"\n' for name, sql in plans.items()
    )
    spec.write_text(body + engine, encoding="utf-8")
    return spec


def _measured_build(spec: Path, home: Path, *flags: str) -> tuple[int, int, str, str]:
    """Exit code, peak RSS (bytes), stdout and stderr of ``codeanatomy build``."""
    cli = [
        sys.executable,
        "-m",
        "codeanatomy_assets.cli.app",
        "build",
        "--config",
        str(spec),
        "--home",
        str(home),
    ]
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cli, *flags],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    code, peak, out, err = done.stdout.splitlines()
    return int(code), int(peak), ast.literal_eval(out), ast.literal_eval(err)


def _store(home: Path) -> DeltaDiagnosticsStore:
    return DeltaDiagnosticsStore(home / "lake" / "_diagnostics")


def test_a_cross_join_at_2gb_fails_clearly_and_stays_under_3gb(big: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    plans = {
        "quick": "select county, count(*) as n from big group by county",
        "cross": "select a.id, a.county, b.id as id2, b.county as county2 from big a cross join big b",
    }
    code, peak, out, err = _measured_build(_spec(tmp_path, big, plans), home, "--memory-limit", "2GB")

    expected = "plan cross needs more than 2.0 GiB of memory; raise [engine] memory_limit or --memory-limit"
    assert code == 1, out + err
    assert peak < 3 * GIB, f"peak RSS {peak / GIB:.2f} GiB"
    assert "failed step: cross" in out and "needs more than 2.0 GiB of memory" in out
    assert "Traceback" not in out + err
    store = _store(home)
    run_id = store.latest_run_id()
    (limit,) = [e for e in store.read_events(run_id) if e.name == "plan_limit_exceeded_v1"]
    assert (limit.plan, limit.code, limit.severity.value, limit.message) == (
        "cross",
        "memory_limit_exceeded",
        "error",
        expected,
    )
    assert limit.payload["memory_limit_bytes"] == 2 * GIB
    # Nothing else lost: the other plan is written, the failed one wrote nothing, the input is untouched.
    assert DeltaTable(str(home / "lake" / "quick")).version() == 0
    assert not (home / "lake" / "cross").exists()
    assert DeltaTable(big).version() == 0
    (run,) = store.read_runs(run_id)
    assert run["metadata"]["engine"]["memory_limit"] == f"{2 * GIB} (2.0 GiB)"
    assert run["metadata"]["engine"]["spill_dir"] == str(home / "spill")


def test_a_plan_over_the_pool_completes_by_spilling_and_says_so(big: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    plans = {"distinct_ids": "select county, count(distinct id) as n from big group by county"}
    spec = _spec(tmp_path, big, plans, engine="[engine]\nmemory_limit = '40MB'\n")
    code, peak, out, err = _measured_build(spec, home)

    assert code == 0, out + err
    store = _store(home)
    run_id = store.latest_run_id()
    (output,) = [e for e in store.read_events(run_id) if e.name == "plan_output_v1"]
    assert output.payload["rows"] == 4096
    assert output.payload["spill_count"] > 0 and output.payload["spilled_bytes"] > 0
    assert output.payload["memory_limit_bytes"] == 40 * 2**20
    report = (home / "run_diagnostics_report.md").read_text(encoding="utf-8")
    (row,) = [line for line in report.splitlines() if line.startswith("| distinct_ids | 4096 |")]
    assert f"| {output.payload['spill_count']} | {output.payload['spilled_bytes']} |" in row
    assert "fair spill pool of 30.0 MiB" in report
    materialization = (
        dg.DagsterInstance.from_config(str(home / "dagster"))
        .get_latest_materialization_event(dg.AssetKey("distinct_ids"))
        .asset_materialization
    )
    assert materialization.metadata["memory/spill_count"].value == output.payload["spill_count"]
    assert peak < 2 * GIB


def test_the_flag_overrides_the_spec_and_bad_sizes_are_usage_errors(big: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    spec = _spec(
        tmp_path, big, {"quick": "select count(*) as n from big"}, "[engine]\nmemory_limit = '40MB'\n"
    )
    code, _, out, err = _measured_build(spec, home, "--memory-limit", "lots")
    assert code == 2
    assert (
        err.strip()
        == "codeanatomy build: error: --memory-limit: not a size: 'lots' (use e.g. 2GB, 512MiB, 70%)"
    )
    assert not home.exists()
    code, _, out, err = _measured_build(spec, home, "--memory-limit", "1GB")
    assert code == 0, out + err
    (run,) = _store(home).read_runs(_store(home).latest_run_id())
    assert json.dumps(run["metadata"]["engine"]).count("1073741824 (1.0 GiB)") == 1
