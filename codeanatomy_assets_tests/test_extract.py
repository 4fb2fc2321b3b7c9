"""The extraction stage: counts on the sample tree, failure statuses, errors, events, the Delta layout."""

from __future__ import annotations

import ast
import importlib.util
import itertools
import json
import os
import re
import shutil
import sysconfig
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from datafusion import SessionContext
from deltalake import DeltaTable
from hypothesis import given
from hypothesis import strategies as st

import codeanatomy_assets.extract as extract_api
from codeanatomy_assets.bench.extraction import measure_extraction
from codeanatomy_assets.diagnostics.event_names import (
    EXTRACT_COMPLETED,
    EXTRACT_DIR_UNREADABLE,
    EXTRACT_FILE_FAILED,
)
from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector
from codeanatomy_assets.errors import SourceTreeError
from codeanatomy_assets.extract import (
    SCHEMAS,
    LayoutPolicy,
    ParseStatus,
    extract_tree,
    file_counts,
    write_datasets,
)
from codeanatomy_assets.extract import layout as layout_module
from codeanatomy_assets.extract import syntax as analysis_module
from codeanatomy_assets.extract.analysis import ChunkColumns, ChunkRequest, analyse_chunk
from codeanatomy_assets.extract.runner import analyse_chunks
from codeanatomy_assets.extract.syntax import resolve_import
from codeanatomy_assets.extract.tables import COLUMNS, assemble, chunk_batches
from codeanatomy_assets.extract.tree import discover

SAMPLE_TREE = Path(__file__).parent / "fixtures" / "sample_tree"
EXPECTED = json.loads(
    re.search(r"```json\n(.*?)\n```", (SAMPLE_TREE / "EXPECTED.md").read_text(), re.DOTALL).group(1)  # type: ignore[union-attr]
)


@pytest.fixture(scope="module")
def sample() -> extract_api.ExtractResult:
    return extract_tree(SAMPLE_TREE, run_id="run-sample", workers=1)


def _rows(table: pa.Table, **where: object) -> list[dict[str, object]]:
    return [row for row in table.to_pylist() if all(row[k] == v for k, v in where.items())]


# --- the sample tree ---------------------------------------------------------------------------------


def test_sample_tree_counts_match_expected(sample: extract_api.ExtractResult) -> None:
    stats = sample.stats
    assert (stats.files, stats.ok_files, stats.failed_files) == (
        EXPECTED["files"], EXPECTED["ok_files"], EXPECTED["failed_files"],
    )  # fmt: skip
    assert stats.lines == EXPECTED["lines"]
    assert dict(stats.rows) == EXPECTED["rows"]
    assert {name: table.num_rows for name, table in sample.tables.items()} == EXPECTED["rows"]
    assert sorted(set(sample.source_files.column("package").to_pylist())) == EXPECTED["packages"]
    assert dict(Counter(sample.symbols.column("kind").to_pylist())) == EXPECTED["symbols_by_kind"]
    enclosing = Counter(sample.calls.column("enclosing_symbol").to_pylist())
    assert enclosing["<module>"] == EXPECTED["calls_at_module_level"]
    assert Counter(sample.calls.column("callee").to_pylist())["<complex>"] == EXPECTED["complex_callees"]
    for name, by_package in EXPECTED["rows_by_package"].items():
        assert dict(Counter(sample.tables[name].column("package").to_pylist())) == by_package


def test_sample_tree_failures_keep_their_rows(sample: extract_api.ExtractResult) -> None:
    failed = {
        row["path"]: row for row in sample.source_files.to_pylist() if row["parse_status"] != ParseStatus.OK
    }
    assert set(failed) == set(EXPECTED["failures"])
    for path, want in EXPECTED["failures"].items():
        assert failed[path]["parse_status"] == want["status"]
        assert str(failed[path]["error"]).startswith(want["error_prefix"])
        assert failed[path]["content_hash"] is not None
        assert failed[path]["lines"] is not None
    assert "0xe9" in str(failed["util/legacy.py"]["error"])


def test_source_files_columns(sample: extract_api.ExtractResult) -> None:
    row = _rows(sample.source_files, path="shop/payments/card.py")[0]
    data = (SAMPLE_TREE / "shop/payments/card.py").read_bytes()
    assert row["module"] == "shop.payments.card"
    assert row["package"] == "shop"
    assert row["bytes"] == len(data)
    assert row["lines"] == data.count(b"\n")
    assert row["content_hash"] == __import__("hashlib").sha256(data).hexdigest()
    assert _rows(sample.source_files, path="shop/__init__.py")[0]["module"] == "shop"
    assert _rows(sample.source_files, path="app.py")[0]["package"] == "app"


def test_relative_imports_resolve_against_the_package(sample: extract_api.ExtractResult) -> None:
    def imported(module: str) -> set[tuple[object, object, object]]:
        return {
            (r["imported_module"], r["imported_name"], r["level"])
            for r in _rows(sample.imports, module=module)
        }

    assert imported("shop") == {("shop.cart", "Cart", 1), ("shop.models", "Item", 1)}  # __init__: itself
    assert ("shop", "models", 1) in imported("shop.cart")  # from . import models
    assert imported("shop.payments") == {
        ("shop", "models", 2),
        ("shop.cart", "Cart", 2),
        ("shop.payments.card", "charge", 1),
    }
    assert imported("shop.payments.card") == {("...util", "text", 3)}  # climbs above the tree: as written
    assert ("util.text", None, 0) in imported("shop.checkout")  # import util.text
    assert ("util.text", "slugify", 0) in imported("shop.checkout")  # the name, not the alias
    levels = Counter(sample.imports.column("level").to_pylist())
    want = EXPECTED["relative_imports"]
    assert (levels[1], levels[2], levels[3]) == (want["level_1"], want["level_2"], want["level_3_unresolved"])


def test_calls_know_their_enclosing_symbol(sample: extract_api.ExtractResult) -> None:
    def calls(module: str) -> set[tuple[object, object]]:
        return {(r["enclosing_symbol"], r["callee"]) for r in _rows(sample.calls, module=module)}

    checkout = calls("shop.checkout")
    assert ("checkout", "Cart.total") in checkout
    assert ("checkout", "util.text.slugify") in checkout
    assert ("checkout", "make_slug") in checkout
    assert ("Receipt.render.<locals>.line", "text.pad") in checkout  # nested function
    assert ("Receipt.render", "line") in checkout  # inside a generator expression
    assert ("Receipt.render", "self.cart.lines.items") in checkout
    assert ("Receipt", "len") in checkout  # a default value runs in the class body
    assert ("Receipt.header", "<complex>") in checkout  # "receipt".upper().center(...)
    models = calls("shop.models")
    assert ("<module>", "dataclass") in models  # a decorator runs where the class is defined
    assert ("Item", "field") in models
    assert ("Item.free", "cls") in models
    assert ("<module>", "logging.getLogger") in calls("shop.cart")
    assert ("sample", "models.Item.free") in calls("shop.cart")


def test_symbols_kinds_decorators_and_complexity(sample: extract_api.ExtractResult) -> None:
    by_name = {(r["module"], r["qualname"]): r for r in sample.symbols.to_pylist()}
    item = by_name[("shop.models", "Item")]
    assert (item["kind"], item["decorators"], item["arg_count"]) == ("class", ["dataclass"], None)
    assert by_name[("shop.models", "Item.price")]["decorators"] == ["property"]
    assert by_name[("shop.checkout", "Receipt.header")]["decorators"] == ["staticmethod"]
    assert by_name[("shop.checkout", "checkout")]["kind"] == "async_function"
    assert by_name[("shop.checkout", "Receipt.render")]["kind"] == "async_method"
    line = by_name[("shop.checkout", "Receipt.render.<locals>.line")]
    assert (line["kind"], line["lineno"], line["end_lineno"]) == ("function", 23, 24)
    charge = by_name[("shop.payments.card", "charge")]
    assert charge["arg_count"] == 4  # cart, token, retries, **options
    assert charge["complexity"] == 4  # 1 + for + except + and
    assert by_name[("shop.cart", "Cart.add")]["complexity"] == 3  # 1 + if + or
    assert by_name[("shop.cart", "Cart.total")]["complexity"] == 3  # 1 + comprehension + its if
    assert by_name[("util.text", "pad")]["complexity"] == 2  # 1 + conditional expression


def test_pool_gives_the_same_tables_as_one_process(sample: extract_api.ExtractResult) -> None:
    pooled = extract_tree(SAMPLE_TREE, run_id="run-pool", workers=2)
    assert pooled.stats.workers == 2
    for name in SCHEMAS:
        assert pooled.tables[name].equals(sample.tables[name]), name


def test_tables_follow_their_schemas(sample: extract_api.ExtractResult) -> None:
    for name, schema in SCHEMAS.items():
        assert sample.tables[name].schema.equals(schema)
        assert tuple(schema.names) == tuple(COLUMNS[name])
    assert list(sample.tables) == ["source_files", "symbols", "imports", "calls"]


def test_public_api_is_sorted_and_importable() -> None:
    def isort_style(name: str) -> tuple[int, str]:  # ruff RUF022: CONSTANTS, then Classes, then functions
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert extract_api.__all__ == sorted(extract_api.__all__, key=isort_style)
    assert set(extract_api.__all__) == set(dir(extract_api))
    for name in extract_api.__all__:
        assert getattr(extract_api, name) is not None


# --- failures ----------------------------------------------------------------------------------------


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def troubled_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    _write(root, "good.py", b"def f():\n    return 1\n")
    _write(root, "latin1_cookie.py", b"# -*- coding: latin-1 -*-\nNAME = 'caf\xe9'\n")  # PEP 263: fine
    _write(root, "bom.py", b"\xef\xbb\xbfX = 1\n")
    _write(root, "syntax.py", b"x = 1\nif x\n    pass\n")
    _write(root, "bad_utf8.py", b"x = 1\ny = '\xff'\n")
    _write(root, "unknown_cookie.py", b"# coding: no-such-codec\nx = 1\n")
    _write(root, "bom_and_latin1.py", b"\xef\xbb\xbf# coding: latin-1\nx = 1\n")
    _write(root, "binary.py", b"x = 1\n\x00\x01\x02")
    _write(root, "huge.py", b"x = 1\n" * 60_000)
    _write(root, "recursive.py", b"x = " + b"+".join([b"1"] * 100_000) + b"\n")
    _write(root, "nested_unary.py", b"x = " + b"-" * 100_000 + b"1\n")
    (root / "loop_a.py").symlink_to("loop_b.py")
    (root / "loop_b.py").symlink_to("loop_a.py")
    (root / "dangling.py").symlink_to("missing.py")
    os.mkfifo(root / "pipe.py")
    _write(root, "site-packages/skipped.py", b"x = 1\n")
    _write(root, "pkg/__pycache__/skipped.py", b"x = 1\n")
    _write(root, "pkg/notes.txt", b"not python\n")
    return root


# 3.11 reports "1+1+...+1" as RecursionError and "----...-1" as MemoryError (parser stack).
TROUBLE_STATUSES = {
    "good.py": ParseStatus.OK,
    "latin1_cookie.py": ParseStatus.OK,
    "bom.py": ParseStatus.OK,
    "syntax.py": ParseStatus.SYNTAX_ERROR,
    "bad_utf8.py": ParseStatus.DECODE_ERROR,
    "unknown_cookie.py": ParseStatus.DECODE_ERROR,
    "bom_and_latin1.py": ParseStatus.DECODE_ERROR,
    "binary.py": ParseStatus.BINARY,
    "huge.py": ParseStatus.TOO_LARGE,
    "recursive.py": ParseStatus.RECURSION_ERROR,
    "nested_unary.py": ParseStatus.MEMORY_ERROR,
    "loop_a.py": ParseStatus.SYMLINK_LOOP,
    "loop_b.py": ParseStatus.SYMLINK_LOOP,
    "dangling.py": ParseStatus.READ_ERROR,
    "pipe.py": ParseStatus.READ_ERROR,
}


def test_every_failure_gets_a_status_an_error_and_an_event(troubled_tree: Path) -> None:
    sink = DiagnosticsCollector()
    result = extract_tree(troubled_tree, run_id="run-trouble", sink=sink, workers=1, max_file_bytes=300_000)
    rows = {row["path"]: row for row in result.source_files.to_pylist()}
    assert {path: rows[path]["parse_status"] for path in rows} == TROUBLE_STATUSES  # none dropped or extra
    errors = {path: row["error"] for path, row in rows.items()}
    assert errors["syntax.py"].startswith("line 2: ")
    assert errors["bad_utf8.py"].startswith("line 2: 'utf-8' codec can't decode byte 0xff")
    assert errors["unknown_cookie.py"] == "line 1: unknown encoding: no-such-codec"
    assert errors["bom_and_latin1.py"] == "line 1: encoding problem: utf-8"
    assert errors["binary.py"].startswith("line 2: NUL byte")
    assert errors["huge.py"] == "360000 bytes is over the limit of 300000 bytes"
    assert rows["huge.py"]["bytes"] == 360_000
    assert rows["huge.py"]["lines"] is None
    assert errors["pipe.py"] == "not a regular file"
    assert all(errors[p] is None for p, s in TROUBLE_STATUSES.items() if s is ParseStatus.OK)
    failed = [p for p, s in TROUBLE_STATUSES.items() if s is not ParseStatus.OK]
    assert result.stats.failed_files == len(failed)
    assert result.stats.ok_files == 3

    events = sink.events_snapshot()[EXTRACT_FILE_FAILED]
    assert sorted(json.loads(e["payload"])["path"] for e in events) == sorted(failed)
    for event in events:
        payload = json.loads(event["payload"])
        assert (event["severity"], event["category"], event["kind"]) == ("warn", "extract", "event")
        assert event["code"] == payload["status"] == rows[payload["path"]]["parse_status"]
        assert event["message"] == f"{payload['path']}: {payload['error']}"
        assert event["run_id"] == "run-trouble"


def test_failures_in_a_pool_do_not_stop_it(troubled_tree: Path) -> None:
    result = extract_tree(troubled_tree, run_id="run-trouble-pool", workers=2, max_file_bytes=300_000)
    columns = result.source_files.select(["path", "parse_status"]).to_pydict()
    assert dict(zip(columns["path"], columns["parse_status"], strict=True)) == TROUBLE_STATUSES


def test_completed_event_carries_the_counts(sample: extract_api.ExtractResult) -> None:
    sink = DiagnosticsCollector()
    result = extract_tree(SAMPLE_TREE, run_id="run-events", sink=sink, workers=1)
    (artifact,) = sink.artifacts_snapshot()[EXTRACT_COMPLETED]
    payload = json.loads(artifact["payload"])
    assert (artifact["severity"], artifact["category"], artifact["kind"]) == ("info", "extract", "artifact")
    assert payload["files"] == EXPECTED["files"]
    assert payload["failed_files"] == EXPECTED["failed_files"]
    assert payload["rows"] == EXPECTED["rows"]
    assert payload["failures_by_status"] == {"decode_error": 1, "syntax_error": 1}
    assert payload["seconds"] >= 0
    assert payload["source"] == result.source
    assert len(sink.events_snapshot()[EXTRACT_FILE_FAILED]) == EXPECTED["failed_files"]


def test_progress_bar_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    extract_tree(SAMPLE_TREE, run_id="run-progress", workers=1, progress=True)
    captured = capsys.readouterr()
    assert "extract" in captured.err
    assert "11/11" in captured.err
    assert captured.out == ""


def _crash_on_marker(request: ChunkRequest) -> ChunkColumns:
    """A worker that dies on ``crash.py`` as a parser crash would (module level: the workers import it)."""
    if any(source.path == "crash.py" for source in request.files):
        os._exit(70)
    return analyse_chunk(request)


def test_a_worker_that_dies_loses_no_file(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for index in range(5):
        _write(root, f"m{index}.py", b"def f():\n    return g()\n")
    _write(root, "crash.py", b"x = 1\n")
    tree = discover(root)
    requests = [ChunkRequest(root=str(tree.root), files=files) for files in tree.chunks(3)]
    results = dict(analyse_chunks(requests, workers=2, work=_crash_on_marker))
    assert sorted(results) == list(range(len(requests)))
    tables = assemble(chunk_batches(results[index]) for index in sorted(results))
    files = tables["source_files"].select(["path", "parse_status"]).to_pydict()
    statuses = dict(zip(files["path"], files["parse_status"], strict=True))
    assert statuses == {"crash.py": "worker_died", **{f"m{i}.py": "ok" for i in range(5)}}
    assert tables["calls"].num_rows == 5


def test_an_analysis_bug_drops_the_files_partial_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "tree"
    _write(root, "fine.py", b"def ok():\n    return len([])\n")
    _write(root, "pkg/__init__.py", b"def f():\n    g()\n\nfrom . import x\n")

    def broken_resolve(*args: object) -> str:
        raise KeyError("boom")

    monkeypatch.setattr(analysis_module, "resolve_import", broken_resolve)
    result = extract_tree(root, run_id="run-bug", workers=1)
    status = _rows(result.source_files, path="pkg/__init__.py")[0]
    assert (status["parse_status"], status["error"]) == ("analysis_error", "KeyError: 'boom'")
    assert set(result.symbols.column("module").to_pylist()) == {"fine"}  # f() of pkg rolled back
    assert result.calls.column("callee").to_pylist() == ["len"]


def test_measure_extraction_reports_both_timings() -> None:
    report = measure_extraction(SAMPLE_TREE, 1, repeat=1)
    assert report["files"] == EXPECTED["files"]
    assert report["parsed_files"] == EXPECTED["ok_files"]
    assert report["rows"] == EXPECTED["rows"]
    assert report["ratio"] > 0
    assert report["cpu_ratio"] > 0


# --- the source tree ---------------------------------------------------------------------------------


def test_source_tree_errors_name_the_path(tmp_path: Path) -> None:
    (tmp_path / "file.py").write_text("x = 1\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "no_python").mkdir()
    (tmp_path / "no_python" / "README.md").write_text("hi\n")
    (tmp_path / "only_site").mkdir()
    _write(tmp_path / "only_site", "site-packages/x.py", b"x = 1\n")
    cases = {
        tmp_path / "missing": "does not exist",
        tmp_path / "file.py": "is not a directory",
        tmp_path / "empty": "holds no Python files",
        tmp_path / "no_python": "holds no Python files",
        tmp_path / "only_site": "holds no Python files",
    }
    for path, words in cases.items():
        with pytest.raises(SourceTreeError) as caught:
            extract_tree(path, run_id="run-errors", workers=1)
        message = str(caught.value)
        assert message.startswith(f"{path}: ")
        assert words in message
        assert "\n" not in message
        assert caught.value.path == str(path)


def test_unreadable_root_and_subdirectory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "tree"
    _write(root, "ok.py", b"x = 1\n")
    _write(root, "locked/hidden.py", b"x = 1\n")
    real_scandir = os.scandir
    locked = {str(root / "locked")}

    def scandir(path: object) -> object:
        if str(path) in locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    sink = DiagnosticsCollector()
    result = extract_tree(root, run_id="run-locked", sink=sink, workers=1)
    assert result.source_files.column("path").to_pylist() == ["ok.py"]
    assert result.stats.unreadable_dirs == 1
    (event,) = sink.events_snapshot()[EXTRACT_DIR_UNREADABLE]
    assert event["code"] == "read_error"
    assert event["message"].startswith("locked/: PermissionError")

    locked.add(str(root.resolve()))
    with pytest.raises(SourceTreeError, match="cannot be read: Permission denied"):
        extract_tree(root, run_id="run-locked", workers=1)


# --- properties --------------------------------------------------------------------------------------

_IDENT = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)


@given(
    parts=st.lists(_IDENT, min_size=1, max_size=4),
    is_package=st.booleans(),
    level=st.integers(min_value=1, max_value=5),
    target=st.none() | _IDENT,
)
def test_resolve_import_agrees_with_importlib(
    parts: list[str], is_package: bool, level: int, target: str | None
) -> None:
    module = ".".join(parts)
    package = module if is_package else module.rpartition(".")[0]
    name = "." * level + (target or "")
    try:
        expected = importlib.util.resolve_name(name, package)
    except (ImportError, ValueError):  # climbs above the top: kept as written
        expected = name
    assert resolve_import(module, is_package, target, level) == expected


def test_stdlib_slice_matches_an_independent_count(tmp_path: Path) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for package in ("json", "email"):
        shutil.copytree(stdlib / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    result = extract_tree(tmp_path, run_id="run-stdlib", workers=2)
    files = sorted(tmp_path.rglob("*.py"))
    defs = calls = imports = 0
    for file in files:
        for node in ast.walk(ast.parse(file.read_bytes())):
            defs += isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            calls += isinstance(node, ast.Call)
            imports += len(node.names) if isinstance(node, (ast.Import, ast.ImportFrom)) else 0
    assert result.stats.files == len(files)
    assert result.stats.failed_files == 0
    assert (result.symbols.num_rows, result.calls.num_rows, result.imports.num_rows) == (defs, calls, imports)
    assert set(result.source_files.column("package").to_pylist()) == {"json", "email"}
    modules = set(result.source_files.column("module").to_pylist())
    assert {"json", "json.decoder", "email", "email.mime.text"} <= modules
    json_imports = {
        (r["imported_module"], r["imported_name"], r["level"]) for r in _rows(result.imports, module="json")
    }
    assert ("json.decoder", "JSONDecoder", 1) in json_imports  # from .decoder import JSONDecoder


# --- writing -----------------------------------------------------------------------------------------


def _read(uri: str) -> pa.Table:
    return pa.table(DeltaTable(uri).scan())


def _canonical(table: pa.Table) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda row: json.dumps(row, sort_keys=True, default=str))


def test_write_datasets_round_trip_and_overwrite(sample: extract_api.ExtractResult, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    uris = write_datasets(sample, lake)
    assert uris == {name: str(lake / name) for name in SCHEMAS}
    for name, uri in uris.items():
        assert _canonical(_read(uri)) == _canonical(sample.tables[name]), name
        history = DeltaTable(uri).history()
        assert history[0]["codeanatomy.run_id"] == "run-sample"
    ctx = SessionContext()  # the DataFusion provider reads the hand-committed files too
    for name, uri in uris.items():
        ctx.register_table(name, DeltaTable(uri))
    decorated = ctx.sql(
        "select qualname, decorators from symbols where cardinality(decorators) > 0 order by qualname"
    ).to_pylist()
    assert [(r["qualname"], r["decorators"]) for r in decorated] == [
        ("Item", ["dataclass"]),
        ("Item.free", ["classmethod"]),
        ("Item.price", ["property"]),
        ("Receipt.header", ["staticmethod"]),
    ]
    write_datasets(sample, lake)  # overwrite: one new version, the same rows
    calls = DeltaTable(uris["calls"])
    assert calls.version() == 1
    assert _read(uris["calls"]).num_rows == EXPECTED["rows"]["calls"]
    write_datasets(sample, lake, mode="append")
    assert _read(uris["symbols"]).num_rows == 2 * EXPECTED["rows"]["symbols"]


def test_clustered_layout_prunes_by_package_and_module(
    sample: extract_api.ExtractResult, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    uris = write_datasets(sample, lake, layout=LayoutPolicy(min_rows_per_file=8, max_files=32))
    calls = uris["calls"]
    counts = file_counts(calls, "package = 'util'")
    assert counts.total >= 3
    assert counts.kept == 1
    assert file_counts(calls, "module = 'shop.checkout'").kept == 1  # a module never spans two files
    adds = pa.table(DeltaTable(calls).get_add_actions(flatten=True)).sort_by("min.module").to_pylist()
    for before, after in itertools.pairwise(adds):
        assert before["max.module"] < after["min.module"]  # disjoint ranges
    kept = pa.table(DeltaTable(calls).scan(predicate="package = 'util'"))
    assert kept.num_rows == EXPECTED["rows_by_package"]["calls"]["util"]


def test_a_failed_write_leaves_the_table_and_no_files(
    sample: extract_api.ExtractResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    uris = write_datasets(sample, lake)
    before = sorted(p.name for p in Path(uris["calls"]).glob("*.parquet"))

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(layout_module, "_commit", fail)
    with pytest.raises(OSError, match="disk full"):
        write_datasets(sample, lake)
    assert DeltaTable(uris["calls"]).version() == 0
    assert sorted(p.name for p in Path(uris["calls"]).glob("*.parquet")) == before
