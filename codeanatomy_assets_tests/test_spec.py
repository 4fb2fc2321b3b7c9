"""The pipeline spec: parsing, dependency order, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeanatomy_assets.errors import ConfigError
from codeanatomy_assets.spec import EXTRACT_DATASETS, load_builtin_spec, load_spec, parse_spec, sql_references


def test_builtin_spec_declares_extract_datasets_and_four_plans_in_dependency_order() -> None:
    spec = load_builtin_spec()
    assert tuple(d.name for d in spec.datasets) == EXTRACT_DATASETS
    names = [p.name for p in spec.plans]
    assert set(names) == {"module_dependencies", "call_edges", "module_metrics", "package_hotspots"}
    assert names.index("module_dependencies") < names.index("module_metrics")
    assert spec.plan("module_metrics").inputs == ("module_dependencies", "source_files", "symbols")
    assert spec.extract is not None and spec.extract.source_path().is_dir()


def test_sql_references_skip_literals_comments_and_unknown_names() -> None:
    sql = "-- from calls\nselect * from symbols s join \"imports\" i on s.x = 'calls' /* calls */ join t"
    assert sql_references(sql, {"calls", "symbols", "imports"}) == ("imports", "symbols")


def test_external_dataset_and_sql_file(tmp_path: Path) -> None:
    (tmp_path / "q.sql").write_text("select day, count(*) as n from trips group by day")
    config = tmp_path / "codeanatomy.toml"
    config.write_text(
        '[datasets.trips]\nuri = "/data/trips"\nstorage_options = { AWS_REGION = "eu" }\n'
        '[plans.busy]\nsql_file = "q.sql"\n'
    )
    spec = load_spec(config)
    assert spec.extract is None
    assert spec.dataset("trips").storage_options == {"AWS_REGION": "eu"}
    assert spec.plan("busy").inputs == ("trips",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[plans.p]\nsql = 'select 1 from x'\nbogus = 1\n", "plans.p.bogus: unknown key"),
        ("[datasets.d]\nuri = 3\n", "datasets.d.uri: must be a string, not int"),
        ("[datasets.d]\n", "datasets.d: missing required key 'uri'"),
        (
            "[datasets.d]\nuri='x'\n[plans.p]\nsql = 'select 1'\n",
            "plans.p: the SQL names no declared dataset",
        ),
        ("[datasets.d]\nuri='x'\n[plans.p]\nsql='select 1 from d'\nsql_file='a.sql'\n", "exactly one of"),
        (
            "[datasets.d]\nuri='x'\n[plans.a]\nsql='select * from b, d'\n[plans.b]\nsql='select * from a'\n",
            "cycle",
        ),
        ("[datasets.\"bad name\"]\nuri='x'\n", "datasets.bad name: names must start with a letter"),
        ("[datasets.select]\nuri='x'\n", "is an SQL keyword"),
        ("[datasets.\"it's\"]\nuri='x'\n", "names must start with a letter"),
        ("[datasets.\"../escape\"]\nuri='x'\n", "names must start with a letter"),
        ("[plans.\"a/b\"]\nsql='select 1 from d'\n[datasets.d]\nuri='x'\n", "names must start with a letter"),
        ("[datasets.\"données\"]\nuri='x'\n", "names must start with a letter"),
        ("[datasets.\"x;drop table y\"]\nuri='x'\n", "names must start with a letter"),
        ("[datasets.d]\nuri='x'\n[plans.d]\nsql='select 1 from d'\n", "names used by both"),
        ("[extract]\n[datasets.calls]\nuri='x'\n", "datasets.calls: is written by [extract]"),
        ("not toml [", "invalid TOML"),
        ("", "declares no datasets and no plans"),
        ("[extract]\nworkers = 0\n", "extract.workers: must be a positive integer"),
    ],
)
def test_bad_specs_name_file_key_and_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_spec(text, source="my.toml", base_dir=None)
    assert str(err.value).startswith("my.toml")
    assert message in str(err.value)
    assert "\n" not in str(err.value).split(": ", 1)[0]


def test_missing_config_file_and_unreadable_sql_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_spec(tmp_path / "nope.toml")
    config = tmp_path / "c.toml"
    config.write_text("[datasets.d]\nuri='x'\n[plans.p]\nsql_file='missing.sql'\n")
    with pytest.raises(ConfigError, match=r"plans\.p: cannot read sql_file"):
        load_spec(config)


def test_with_source_needs_extract(tmp_path: Path) -> None:
    spec = parse_spec("[datasets.d]\nuri='x'\n", source="c.toml", base_dir=None)
    with pytest.raises(ConfigError, match="--source given but the spec has no"):
        spec.with_source(str(tmp_path))
    builtin = load_builtin_spec().with_source(str(tmp_path))
    assert builtin.extract is not None and builtin.extract.source_path() == tmp_path.resolve()


# --- identifiers as DataFusion reads them ------------------------------------------------------------------

_KNOWN = {"covid", "http", "calls"}


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM COVID", ("covid",)),
        ("select * from Covid c join HTTP h on c.x = h.x", ("covid", "http")),
        ('select * from "covid"', ("covid",)),
        ("select * from `covid`", ("covid",)),
        ("select * from calls where x in (select x from (select x from Http) s)", ("calls", "http")),
        ("select * from datafusion.public.COVID", ("covid",)),
        ('select * from "datafusion"."public"."covid"', ("covid",)),
        ("with covid as (select * from calls) select * from covid", ("calls",)),
        ("with covid as (select x + 1 as x from covid) select * from covid", ("covid",)),
        ("with c as (select * from covid), covid as (select 5 as x) select * from c", ("covid",)),
        ("with covid as (select 1 as x) select * from datafusion.public.covid", ("covid",)),
        ("select * from calls where x in (with covid as (select 7 as x) select x from covid)", ("calls",)),
        (
            "with recursive http as (select 1 as x union all select x + 1 from http where x < 3) select * from http",
            (),
        ),
        ("select count(*) as covid from calls as http", ("calls",)),
    ],
)
def test_sql_references_fold_unquoted_identifiers_like_datafusion(
    sql: str, expected: tuple[str, ...]
) -> None:
    """The inputs found are the tables DataFusion needs for the same SQL: all of them, and no other."""
    import datafusion
    import pyarrow as pa

    assert sql_references(sql, _KNOWN) == expected
    only_inputs = datafusion.SessionContext()
    for name in expected:
        only_inputs.register_record_batches(name, [pa.table({"x": [1]}).to_batches()])
    only_inputs.sql(sql).logical_plan()  # plans: no input is missing
    every_name = datafusion.SessionContext()
    for name in _KNOWN:
        every_name.register_record_batches(name, [pa.table({"x": [1]}).to_batches()])
    plan = every_name.sql(sql).logical_plan().display_indent()
    if "RecursiveQuery" not in plan:  # a recursive CTE's own name is shown as a scan of its work table
        scans = {
            line.split("TableScan: ")[1].split()[0] for line in plan.splitlines() if "TableScan: " in line
        }
        assert {s.rsplit(".", 1)[-1] for s in scans} == set(expected)  # no input is needless


def test_quoted_names_keep_their_case_and_the_error_says_so() -> None:
    assert sql_references('select * from "COVID"', {"covid"}) == ()
    with pytest.raises(ConfigError) as err:
        parse_spec(
            "[datasets.covid]\nuri='x'\n[plans.p]\nsql='select * from \"COVID\"'\n",
            source="c.toml",
            base_dir=None,
        )
    assert "plans.p: the SQL names no declared dataset or plan" in str(err.value)
    assert 'quoted identifiers keep their case ("COVID")' in str(err.value)
    spec = parse_spec(
        "[datasets.covid]\nuri='x'\n[plans.p]\nsql='SELECT * FROM COVID'\n", source="c.toml", base_dir=None
    )
    assert spec.plan("p").inputs == ("covid",)


@pytest.mark.parametrize(
    ("text", "key", "lower"),
    [
        ("[datasets.Covid]\nuri='x'\n", "datasets.Covid", "covid"),
        ("[datasets.d]\nuri='x'\n[plans.TopDays]\nsql='select * from d'\n", "plans.TopDays", "topdays"),
    ],
)
def test_mixed_case_names_are_refused_with_the_lower_case_spelling(text: str, key: str, lower: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_spec(text, source="c.toml", base_dir=None)
    assert str(err.value) == (
        f"c.toml: {key}: names must be lower case: unquoted SQL identifiers fold to lower case; use {lower}"
    )


@pytest.mark.parametrize(
    ("name", "probe"), [("user", "SELECT user.x FROM user"), ("lateral", "SELECT * FROM lateral")]
)
def test_names_datafusion_reads_as_keywords_are_refused(name: str, probe: str) -> None:
    """Every declared name can be referenced unquoted: as a table, as a qualifier, on either side of a join."""
    with pytest.raises(ConfigError) as err:
        parse_spec(f"[datasets.{name}]\nuri='x'\n", source="c.toml", base_dir=None)
    assert (
        f"datasets.{name}: is read as an SQL keyword where a table name goes ({probe!r} does not plan)"
        in str(err.value)
    )
    assert (
        parse_spec("[datasets.users]\nuri='x'\n", source="c.toml", base_dir=None).dataset("users").uri == "x"
    )


# --- dataset URIs ------------------------------------------------------------------------------------------


def test_relative_dataset_uris_resolve_against_the_spec_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    folder = tmp_path / "conf dir"
    folder.mkdir()
    config = folder / "codeanatomy.toml"
    config.write_text(
        "[datasets.rel]\nuri = 'tables/a b'\n"
        "[datasets.up]\nuri = '../t?x'\n"
        "[datasets.tilde]\nuri = '~/t'\n"
        "[datasets.abs]\nuri = '/data/t'\n"
        "[datasets.s3]\nuri = 's3://bucket/t'\n"
        "[datasets.url]\nuri = 'file:///data/t%20x'\n"
    )
    monkeypatch.chdir(tmp_path)
    spec = load_spec(Path("conf dir") / "codeanatomy.toml")
    uris = {d.name: d.uri for d in spec.datasets}
    assert uris == {
        "rel": str(folder / "tables" / "a b"),
        "up": str(tmp_path / "t?x"),
        "tilde": str(tmp_path / "home" / "t"),
        "abs": "/data/t",
        "s3": "s3://bucket/t",
        "url": "file:///data/t%20x",
    }
