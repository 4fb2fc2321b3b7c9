"""DataFusion's allocator setting: set before DataFusion loads, a user's value kept, the value recorded."""

from __future__ import annotations

import os
import subprocess
import sys

from codeanatomy_assets.allocator import THP_VARIABLE, allocator_settings, configure_allocator
from codeanatomy_assets.engine.session import EngineSettings, effective_settings


def _mimalloc_allow_thp(code: str, **env: str) -> str:
    """The ``allow_thp`` option DataFusion's mimalloc reports at load in a fresh process running ``code``."""
    environ = {k: v for k, v in os.environ.items() if k != THP_VARIABLE} | {"MIMALLOC_VERBOSE": "1", **env}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, check=True
    )
    lines = [line for line in done.stderr.splitlines() if "option 'allow_thp'" in line]
    assert lines, done.stderr[-2000:]
    return lines[0].split(":")[-1].strip()


def test_importing_the_package_first_turns_huge_pages_off_in_datafusions_allocator() -> None:
    assert _mimalloc_allow_thp("import codeanatomy_assets, datafusion") == "0"
    assert _mimalloc_allow_thp("import datafusion") == "1"  # DataFusion's own default, for contrast


def test_a_users_setting_wins() -> None:
    assert _mimalloc_allow_thp("import codeanatomy_assets, datafusion", MIMALLOC_ALLOW_THP="1") == "1"
    environ = {THP_VARIABLE: "1"}
    configure_allocator(environ)
    assert environ == {THP_VARIABLE: "1"}
    empty: dict[str, str] = {}
    configure_allocator(empty)
    assert empty == {THP_VARIABLE: "0"}


def test_the_setting_in_force_is_recorded_with_the_engine_settings() -> None:
    assert (
        effective_settings(EngineSettings())["allocator_transparent_huge_pages"]
        == (allocator_settings()["allocator_transparent_huge_pages"])
    )
    assert allocator_settings()["allocator_transparent_huge_pages"].startswith(f"{THP_VARIABLE}=")
