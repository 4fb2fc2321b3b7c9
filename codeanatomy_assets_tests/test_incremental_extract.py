"""Incremental extraction: after adding, changing, renaming and deleting files, the lake's four tables
hold exactly the rows a full extraction of the same tree gives, with one commit per table that changed."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from deltalake import DeltaTable

from codeanatomy_assets.extract.rebuild import ExtractTarget, RebuildOutcome, rebuild_extract
from codeanatomy_assets.extract.tables import DATASET_NAMES

FIXTURE = Path(__file__).parent / "fixtures" / "sample_tree"


def _rows(uri: str) -> list[str]:
    """The table's rows as a sorted list (a multiset), each row as canonical JSON."""
    return sorted(json.dumps(r, sort_keys=True) for r in DeltaTable(uri).to_pyarrow_table().to_pylist())


def _extract(tree: Path, lake: Path, *, full: bool) -> RebuildOutcome:
    target = ExtractTarget(lake=str(lake), storage_options={}, workers=1)
    return rebuild_extract(tree, target, run_id="r", sink=None, full=full)


def _versions(lake: Path) -> dict[str, int]:
    return {name: DeltaTable(str(lake / name)).version() for name in DATASET_NAMES}


def _add(tree: Path) -> None:
    (tree / "shop" / "refunds.py").write_text(
        "from .models import Order\n\ndef refund(o: Order):\n    return o.total\n"
    )


def _change(tree: Path) -> None:
    path = tree / "shop" / "cart.py"
    path.write_text(path.read_text() + "\n\ndef empty_cart():\n    return []\n")


def _rename(tree: Path) -> None:
    (tree / "util" / "text.py").rename(tree / "util" / "strings.py")


def _delete(tree: Path) -> None:
    (tree / "app.py").unlink()


def _break(tree: Path) -> None:
    (tree / "shop" / "checkout.py").write_text("def broken(:\n")


CHANGES: dict[str, Callable[[Path], None]] = {
    "add": _add,
    "change": _change,
    "rename": _rename,
    "delete": _delete,
    "syntax_error": _break,
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "tree"))


@pytest.mark.parametrize("change", list(CHANGES))
def test_incremental_equals_a_full_rebuild(tree: Path, tmp_path: Path, change: str) -> None:
    lake = tmp_path / "lake"
    first = _extract(tree, lake, full=False)
    assert first.plan.mode == "full" and "no previous extract table" in first.plan.reason
    before = _versions(lake)
    CHANGES[change](tree)
    outcome = _extract(tree, lake, full=False)
    assert outcome.plan.mode == "incremental", outcome.plan.reason
    reference = tmp_path / "reference"
    _extract(tree, reference, full=True)
    for name in DATASET_NAMES:
        assert _rows(str(lake / name)) == _rows(str(reference / name)), name
    after = _versions(lake)
    committed = {name for name in DATASET_NAMES if after[name] == before[name] + 1}
    assert committed == set(outcome.tables_rewritten)
    assert all(
        after[name] in (before[name], before[name] + 1) for name in DATASET_NAMES
    )  # one commit at most
    assert "source_files" in committed
    assert outcome.parsed.stats.files < first.parsed.stats.files
    assert outcome.summary.stats.files == sum(1 for _ in tree.rglob("*.py"))


def test_every_change_at_once_then_no_change(tree: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _extract(tree, lake, full=False)
    for apply in CHANGES.values():
        apply(tree)
    outcome = _extract(tree, lake, full=False)
    changes = outcome.plan.changes
    assert changes is not None
    assert (len(changes.added), len(changes.changed), len(changes.deleted)) == (2, 2, 2)
    reference = tmp_path / "reference"
    _extract(tree, reference, full=True)
    assert all(_rows(str(lake / n)) == _rows(str(reference / n)) for n in DATASET_NAMES)
    versions = _versions(lake)
    unchanged = _extract(tree, lake, full=False)
    assert unchanged.plan.changes is not None and unchanged.plan.changes.empty
    assert unchanged.parsed.stats.files == 0 and unchanged.tables_rewritten == ()
    assert _versions(lake) == versions  # no commit at all
    assert unchanged.summary.stats.files == outcome.summary.stats.files


def test_full_is_forced_by_the_flag_and_by_another_source(tree: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _extract(tree, lake, full=False)
    assert _extract(tree, lake, full=True).plan.reason == "a full rebuild was asked for (--full)"
    other = Path(shutil.copytree(FIXTURE, tmp_path / "other"))
    moved = _extract(other, lake, full=False)
    assert moved.plan.mode == "full" and "was extracted from" in moved.plan.reason


def test_maintenance_between_rebuilds_keeps_them_incremental(tree: Path, tmp_path: Path) -> None:
    from deltalake import DeltaTable

    lake = tmp_path / "lake"
    _extract(tree, lake, full=False)
    for name in DATASET_NAMES:
        table = DeltaTable(str(lake / name))
        table.optimize.compact()
        table.create_checkpoint()
    _change(tree)
    outcome = _extract(tree, lake, full=False)
    assert outcome.plan.mode == "incremental", outcome.plan.reason
    reference = tmp_path / "reference"
    _extract(tree, reference, full=True)
    assert all(_rows(str(lake / n)) == _rows(str(reference / n)) for n in DATASET_NAMES)


def test_a_file_too_large_to_parse_is_unchanged_when_its_bytes_are(tree: Path, tmp_path: Path) -> None:
    (tree / "big.py").write_text("x = 1\n" * 400_000)  # 2.4 MB: over the 2 MiB limit, recorded, not parsed
    lake = tmp_path / "lake"
    _extract(tree, lake, full=False)
    again = _extract(tree, lake, full=False)
    assert again.plan.changes is not None and again.plan.changes.empty, again.plan.reason
