"""The top-level public API: declared once, sorted, every name importable, nothing heavy at import."""

from __future__ import annotations

import subprocess
import sys

import codeanatomy_assets


def test_all_is_sorted_unique_and_resolves() -> None:
    names = codeanatomy_assets.__all__
    assert names == sorted(names, key=lambda n: (not n[0].isupper(), n))
    assert len(set(names)) == len(names)
    for name in names:
        assert getattr(codeanatomy_assets, name) is not None, name
    assert set(codeanatomy_assets._MODULE_OF) == set(names)


def test_import_does_not_load_the_engines() -> None:
    code = (
        "import sys, codeanatomy_assets; "
        "print(sorted(m for m in ('dagster', 'datafusion', 'deltalake', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
