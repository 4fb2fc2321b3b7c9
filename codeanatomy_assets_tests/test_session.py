"""Engine sessions: sizes, the [engine] table, the memory pool that spills, and what is recorded."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from codeanatomy_assets.engine import session as session_module
from codeanatomy_assets.engine.session import (
    EngineSettings,
    effective_settings,
    machine_memory,
    memory_exhausted,
    new_session,
    operator_limit,
    parse_size,
    result_limit,
    sweep_spill,
)
from codeanatomy_assets.errors import ConfigError
from codeanatomy_assets.spec import parse_spec

_DATASET = "[datasets.d]\nuri = 'x'\n[plans.p]\nsql = 'select 1 from d'\n"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GB", 2 * 2**30),
        ("2 gb", 2 * 2**30),
        ("512MiB", 512 * 2**20),
        ("1.5G", 3 * 2**29),
        ("64k", 64 * 1024),
        ("1073741824", 2**30),
        (4096, 4096),
    ],
)
def test_sizes_are_binary_units(text: str | int, size: int) -> None:
    assert parse_size(text) == size


def test_a_share_of_memory_is_of_this_machine() -> None:
    assert parse_size("50%") == machine_memory() // 2
    assert 0 < machine_memory() <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@pytest.mark.parametrize("bad", ["lots", "-1GB", "0", "0%", "150%", "2 PB", "", True, 1.5])
def test_bad_sizes_are_one_clear_line_naming_file_and_key(bad: object) -> None:
    with pytest.raises(ConfigError) as err:
        parse_size(bad, source="my.toml", key="engine.memory_limit")  # type: ignore[arg-type]
    assert str(err.value).startswith("my.toml: engine.memory_limit: ")
    assert "\n" not in str(err.value)


def test_engine_table_is_parsed_and_options_become_text() -> None:
    spec = parse_spec(
        _DATASET + "[engine]\nmemory_limit = '3GB'\ntarget_partitions = 3\n"
        "[engine.options]\n'datafusion.execution.parquet.pushdown_filters' = true\n"
        "'datafusion.execution.batch_size' = 4096\n",
        source="c.toml",
        base_dir=None,
    )
    assert spec.engine == EngineSettings(
        memory_limit=3 * 2**30,
        target_partitions=3,
        options={
            "datafusion.execution.parquet.pushdown_filters": "true",
            "datafusion.execution.batch_size": "4096",
        },
    )
    assert parse_spec(_DATASET, source="c.toml", base_dir=None).engine == EngineSettings()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[engine]\nmemory_limit = 'lots'\n", "engine.memory_limit: not a size: 'lots'"),
        ("[engine]\nbogus = 1\n", "engine.bogus: unknown key"),
        ("[engine]\ntarget_partitions = 0\n", "engine.target_partitions: must be a positive integer"),
        (
            "[engine.options]\n'datafusion.nope' = 'x'\n",
            "engine.options.datafusion.nope: Invalid or Unsupported Configuration",
        ),
        (
            "[engine.options]\n'datafusion.execution.parquet.pushdown_filters' = 'maybe'\n",
            "engine.options.datafusion.execution.parquet.pushdown_filters: Error parsing 'maybe' as bool",
        ),
        (
            "[engine.options]\n'datafusion.runtime.memory_limit' = '1G'\n",
            "engine.options.datafusion.runtime.memory_limit: runtime keys are set by memory_limit",
        ),
        ("timeout_s = 0\n", "plans.p.timeout_s: must be a positive number of seconds"),
        ("timeout_s = 'soon'\n", "plans.p.timeout_s: must be a positive number of seconds"),
    ],
)
def test_bad_engine_settings_name_file_and_key(table: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_spec(_DATASET + table, source="my.toml", base_dir=None)
    assert str(err.value).startswith("my.toml: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_plan_timeout_is_read() -> None:
    spec = parse_spec(_DATASET + "timeout_s = 2.5\n", source="c.toml", base_dir=None)
    assert spec.plan("p").timeout_s == 2.5


def test_user_options_override_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = {"datafusion.execution.batch_size": "1024", "datafusion.sql_parser.dialect": "generic"}
    monkeypatch.setattr(session_module, "DEFAULT_OPTIONS", defaults)
    settings = EngineSettings(
        options={"datafusion.execution.batch_size": "2048", "datafusion.catalog.information_schema": "true"}
    )
    assert settings.merged_options()["datafusion.execution.batch_size"] == "2048"
    ctx = new_session(settings)
    shown = ctx.sql("show datafusion.execution.batch_size").to_pydict()
    assert shown["value"] == ["2048"]


def test_a_session_spills_under_the_folder_it_is_given(tmp_path: Path) -> None:
    settings = EngineSettings(memory_limit=32 * 2**20, spill_dir=tmp_path / "spill", target_partitions=1)
    ctx = new_session(settings)
    ids = pa.array(range(2_000_000), pa.int64())
    ctx.register_record_batches(
        "t", [pa.table({"id": ids, "k": pa.compute.bit_wise_and(ids, 1023)}).to_batches()]
    )
    ctx.sql("select k, count(distinct id) from t group by k").collect()
    assert (tmp_path / "spill" / str(os.getpid())).is_dir()


def test_a_plan_past_the_pool_fails_with_resources_exhausted() -> None:
    ctx = new_session(EngineSettings(memory_limit=4 * 2**20, target_partitions=1))
    ids = pa.array(range(1_000_000), pa.int64())
    ctx.register_record_batches("t", [pa.table({"id": ids}).to_batches(max_chunksize=8192)])
    with pytest.raises(Exception) as err:  # noqa: PT011 - DataFusion raises a bare Exception
        ctx.sql("select a.id from t a join t b on a.id = b.id").collect()
    assert memory_exhausted(err.value)
    assert not memory_exhausted(ValueError("other"))


def test_the_limit_is_split_between_operators_and_the_result() -> None:
    settings = EngineSettings(memory_limit=2 * 2**30, spill_dir=Path("/h/spill"))
    assert operator_limit(settings) + result_limit(settings) == 2 * 2**30
    assert result_limit(settings) == 2**29
    effective = effective_settings(settings)
    assert effective["memory_limit"] == "2147483648 (2.0 GiB)"
    assert effective["memory_limit_source"] == "configured"
    assert effective["spill_dir"] == "/h/spill"
    default = effective_settings(EngineSettings())
    assert default["memory_limit_source"].startswith("default: 50% of ")


def test_settings_are_hashable_keys_of_the_session_pool() -> None:
    one = EngineSettings(options={"a": "1"})
    assert {one: 1}[EngineSettings(options={"a": "1"})] == 1


def test_sweep_removes_only_dead_processes_folders(tmp_path: Path) -> None:
    mine = tmp_path / str(os.getpid())
    dead = tmp_path / "999999999"
    other = tmp_path / "notes"
    for folder in (mine, dead, other):
        folder.mkdir()
    assert sweep_spill(tmp_path) == [dead]
    assert mine.is_dir() and other.is_dir() and not dead.exists()
