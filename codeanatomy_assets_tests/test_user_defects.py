"""The defects a user hit on their own tables (issue 14), from the user's side: ``codeanatomy`` in a
subprocess over real Delta tables, checking exit codes, output rows and the recorded diagnostics.

- identifiers: unquoted names fold to lower case and quoted ones keep their case, in validation and at run
  time alike (subqueries, CTEs that shadow a dataset, schema-qualified names); mixed-case declared names
  are refused with the spelling to use;
- paths: a table in a folder named with a space, ``#``, ``?``, ``%`` and glob characters, given by a URI
  relative to the spec file, is served by ``delta_pruned_parquet`` without a fallback;
- writes: nested columns of a column-mapped table and the engine's types Delta has no counterpart for are
  written; a failed write leaves no folder behind and an earlier version of the output as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from codeanatomy_assets.delta_types import normalize_for_delta
from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.result_write import write_result
from codeanatomy_assets_tests.cli import run_cli

ODD_FOLDER = "covid data #1 ?%[x]*"

SPEC = """
[datasets.covid]
uri = "../my tables/covid data #1 ?%[x]*"   # relative to this file, not to the working directory

[datasets.mapped]
uri = "../my tables/mapped"

[plans.by_state]
sql = "SELECT State, sum(Cases) AS n FROM COVID WHERE cases > 1 GROUP BY state"

[plans.biggest]
sql = "select * from (select state, cases from Covid) s where s.cases = (select max(cases) from CoViD)"

[plans.shadowed]
sql = "with covid as (select * from datafusion.public.covid where cases > 4) select count(*) as n from covid"

[plans.nested]
sql = "select id, tags, attrs, info from mapped"

[plans.id_only]
sql = "select id from mapped"

[plans.engine_types]
sql = '''select row_number() over (order by id) as rn, interval '1 day' as i,
         arrow_cast(1500, 'Duration(Millisecond)') as d, arrow_cast('12:30:00', 'Time64(Microsecond)') as t
         from mapped'''

[plans.keep]
sql = "select state from covid"
"""


def _rows(uri: Path) -> list[dict[str, object]]:
    table = pa.table(pa.RecordBatchReader.from_stream(DeltaTable(str(uri)).scan()))
    return sorted(table.to_pylist(), key=repr)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@dataclass(frozen=True)
class UserBuild:
    root: Path
    home: Path
    proc: subprocess.CompletedProcess[str]
    run_id: str

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    def store(self) -> DeltaDiagnosticsStore:
        return DeltaDiagnosticsStore(self.lake / "_diagnostics")


def _user_tables(root: Path) -> Path:
    tables = root / "my tables"
    tables.mkdir()
    written = root / "written"  # deltalake 1.6.6 panics writing to a path holding "[" (reading is fine)
    write_deltalake(written, pa.table({"state": ["ny", "ny", "ca", "tx"], "cases": [1, 5, 7, 2]}))
    write_deltalake(written, pa.table({"state": ["ca"], "cases": [10]}), mode="append")
    written.rename(tables / ODD_FOLDER)
    mapped = pa.table(
        {
            "id": [1, 2],
            "tags": [["a"], ["b", "c"]],
            "attrs": pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int64())),
            "info": [{"a": 1, "b": "x"}, {"a": 2, "b": None}],
        }
    )
    write_deltalake(tables / "mapped", mapped, configuration={"delta.columnMapping.mode": "name"})
    assert DeltaTable(str(tables / "mapped")).metadata().configuration["delta.columnMapping.mode"] == "name"
    return tables


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> UserBuild:
    root = tmp_path_factory.mktemp("user")
    _user_tables(root)
    (root / "conf").mkdir()
    (root / "conf" / "spec.toml").write_text(SPEC)
    (root / "elsewhere").mkdir()
    home = root / "home"
    proc = run_cli("build", "--config", "../conf/spec.toml", "--home", str(home), cwd=root / "elsewhere")
    run_id = DeltaDiagnosticsStore(home / "lake" / "_diagnostics").latest_run_id()
    assert run_id is not None, proc.stdout + proc.stderr
    return UserBuild(root=root, home=home, proc=proc, run_id=run_id)


# --- identifiers -------------------------------------------------------------------------------------------


def test_the_build_succeeds_and_folded_identifiers_read_the_declared_datasets(user: UserBuild) -> None:
    assert user.proc.returncode == 0, user.proc.stdout + user.proc.stderr
    assert _rows(user.lake / "by_state") == [
        {"state": "ca", "n": 17},
        {"state": "ny", "n": 5},
        {"state": "tx", "n": 2},
    ]
    assert _rows(user.lake / "biggest") == [{"state": "ca", "cases": 10}]  # names inside subqueries
    assert _rows(user.lake / "shadowed") == [{"n": 3}]  # a CTE named like the dataset it reads


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "[datasets.Covid]\nuri = 'x'\n",
            "datasets.Covid: names must be lower case: unquoted SQL identifiers fold to lower case; use covid",
        ),
        (
            "[datasets.covid]\nuri = 'x'\n[plans.p]\nsql = 'select * from \"COVID\"'\n",
            "plans.p: the SQL names no declared dataset or plan (known: ['covid']); quoted identifiers keep "
            'their case ("COVID")',
        ),
    ],
)
def test_names_that_could_not_be_referenced_are_usage_errors(tmp_path: Path, spec: str, message: str) -> None:
    (tmp_path / "spec.toml").write_text(spec)
    proc = run_cli("build", "--config", "spec.toml", "--home", str(tmp_path / "home"), cwd=tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, proc.stderr
    assert message in errors[0]
    assert not (tmp_path / "home" / "lake").exists()


# --- paths -------------------------------------------------------------------------------------------------


def test_the_odd_local_path_is_served_by_the_pruned_mode_without_a_fallback(user: UserBuild) -> None:
    store = user.store()
    (mode,) = [
        e for e in store.read_events(user.run_id, names=["dataset_provider_mode_v1"]) if e.dataset == "covid"
    ]
    assert mode.payload["provider_mode"] == "delta_pruned_parquet"
    assert (mode.severity, mode.code, mode.payload["fallback_reason"]) == (
        Severity.INFO,
        "provider_mode_default",
        None,
    )
    (summary,) = [
        e for e in store.read_events(user.run_id, names=["dataset_summary_v1"]) if e.dataset == "covid"
    ]
    assert summary.payload["uri"] == str(user.root / "my tables" / ODD_FOLDER)  # resolved against the spec
    flagged = [
        e for e in store.read_events(user.run_id) if e.dataset == "covid" and e.severity is not Severity.INFO
    ]
    assert flagged == []
    assert "missing or damaged" not in user.proc.stdout + user.proc.stderr


def test_the_doctor_reads_the_odd_path(user: UserBuild) -> None:
    proc = run_cli("doctor", str(user.root / "my tables" / ODD_FOLDER), "--format", "json", cwd=user.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["provider_mode"] == "delta_pruned_parquet"
    assert report["protocol_compatible"] is True


# --- writes ------------------------------------------------------------------------------------------------


def test_nested_columns_of_a_column_mapped_table_are_written(user: UserBuild) -> None:
    mode = next(
        e
        for e in user.store().read_events(user.run_id, names=["dataset_provider_mode_v1"])
        if e.dataset == "mapped"
    )
    assert mode.payload["provider_mode"] == "delta_table_provider"  # the mode that reads column mapping
    assert _rows(user.lake / "nested") == [
        {"id": 1, "tags": ["a"], "attrs": [("k", 1)], "info": {"a": 1, "b": "x"}},
        {"id": 2, "tags": ["b", "c"], "attrs": [], "info": {"a": 2, "b": None}},
    ]
    assert _rows(user.lake / "id_only") == [
        {"id": 1},
        {"id": 2},
    ]  # no cast needed, metadata dropped all the same
    for plan in ("nested", "id_only"):
        assert "columnMapping" not in DeltaTable(str(user.lake / plan)).schema().to_json()


def test_engine_types_without_a_delta_counterpart_are_written(user: UserBuild) -> None:
    table = DeltaTable(str(user.lake / "engine_types"))
    types = {f.name: f.type for f in pa.schema(table.schema())}
    assert types["rn"] == pa.int64()  # row_number() is uint64
    assert types["i"] == pa.struct(
        [("months", pa.int32()), ("days", pa.int32()), ("nanoseconds", pa.int64())]
    )
    assert types["d"] == pa.int64()  # microseconds
    row = _rows(user.lake / "engine_types")[0]
    assert (row["i"], row["d"], row["t"]) == (
        {"months": 0, "days": 1, "nanoseconds": 0},
        1_500_000,
        "12:30:00.000000",
    )


def test_failed_writes_leave_no_folder_and_the_previous_version_as_it_was(user: UserBuild) -> None:
    """deltalake refuses columns that differ only in case; the plan fails, nothing it began stays behind."""
    home = user.root / "home-again"
    shutil.copytree(user.home, home)
    keep = home / "lake" / "keep"
    before = (DeltaTable(str(keep)).version(), _rows(keep), _files(keep))
    failing = 'select state as x, cases as "X" from covid'
    spec = user.root / "conf" / "failing.toml"
    spec.write_text(
        '[datasets.covid]\nuri = "../my tables/covid data #1 ?%[x]*"\n'
        f"[plans.keep]\nsql = '{failing}'\n[plans.fresh]\nsql = '{failing}'\n"
        "[plans.fine]\nsql = 'select count(*) as n from covid'\n"
    )
    proc = run_cli("build", "--config", str(spec), "--home", str(home), cwd=user.root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert not (home / "lake" / "fresh").exists()
    assert (DeltaTable(str(keep)).version(), _rows(keep), _files(keep)) == before
    assert _rows(home / "lake" / "fine") == [{"n": 5}]
    run_id = DeltaDiagnosticsStore(home / "lake" / "_diagnostics").latest_run_id()
    assert run_id is not None
    failed = {
        e.plan
        for e in DeltaDiagnosticsStore(home / "lake" / "_diagnostics").read_events(run_id)
        if e.code == "write_failed"
    }
    assert failed == {"keep", "fresh"}


def test_normalize_for_delta_strips_field_metadata_at_every_level(tmp_path: Path) -> None:
    marked = {"delta.columnMapping.id": "1", "PARQUET:field_id": "7"}
    child = pa.field("a", pa.string_view(), metadata=marked)
    arrays = {
        "n": pa.array([1, None]),
        "l": pa.array([["x"], None], pa.list_(child)),
        "v": pa.array([[1], [2, 3]], pa.list_view(pa.field("item", pa.int64(), metadata=marked))),
        "f": pa.array([["p", "q"], None], pa.list_(pa.field("item", pa.large_string(), metadata=marked), 2)),
        "s": pa.array([{"a": "y"}, None], pa.struct([child])),
        "m": pa.array([[("k", "z")], []], pa.map_(pa.field("k", pa.string(), False, metadata=marked), child)),
        "d": pa.array(["w", "w"]).dictionary_encode(),
    }
    schema = pa.schema([pa.field(name, a.type, metadata=marked) for name, a in arrays.items()])
    table = pa.Table.from_arrays(list(arrays.values()), schema=schema)
    normalized = normalize_for_delta(table)
    normalized.validate(full=True)  # pyarrow 26 casts list views to invalid lists: not used
    assert "metadata" not in repr(normalized.schema)
    assert normalized.to_pylist() == [
        {"n": 1, "l": ["x"], "v": [1], "f": ["p", "q"], "s": {"a": "y"}, "m": [("k", "z")], "d": "w"},
        {"n": None, "l": None, "v": [2, 3], "f": None, "s": None, "m": [], "d": "w"},
    ]
    write_result(str(tmp_path / "out"), table, None)
    assert _rows(tmp_path / "out") == sorted(normalized.to_pylist(), key=repr)


def test_a_failed_write_of_a_new_table_removes_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(Exception, match="case-insensitive"):
        write_result(str(out), pa.table({"x": [1], "X": [2]}), None)
    assert not out.exists()
    assert os.listdir(tmp_path) == []


def test_a_deltalake_panic_is_an_error_and_leaves_no_folder(tmp_path: Path) -> None:
    """deltalake 1.6.6 panics writing under a folder named with "[": a plain error, said why, nothing left."""
    out = tmp_path / "home [1]" / "lake" / "plan"
    with pytest.raises(
        RuntimeError, match=r"deltalake panicked: .*cannot write to a local path holding '\['"
    ):
        write_result(str(out), pa.table({"x": [1]}), None)
    assert not out.exists()
