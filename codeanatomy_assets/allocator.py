"""DataFusion's memory allocator, set before DataFusion loads: transparent huge pages off by default.

DataFusion's Python package allocates through its own mimalloc (v3), which marks its 1 GiB arenas for
transparent huge pages (``MADV_HUGEPAGE``, its ``allow_thp`` option). Where a huge-page fault is dear, a
query that grows a large hash table spends as long in the kernel as in its own work: on the 2-core
Firecracker VM of ``docs/benchmarks.md`` (THP ``madvise``, free-page reporting), TPC-H SF1 q18 took
870-1,240 ms with huge pages (700-1,260 ms of it system time) and 560-670 ms without, and the 22 queries
3.66-4.35 s against 3.43-3.52 s, run to run steadier. mimalloc reads its options once, when the library
loads, so :func:`configure_allocator` runs when this package is imported, before anything imports
``datafusion``. A user's own ``MIMALLOC_ALLOW_THP`` wins (``1`` restores DataFusion's default), and the
value in force is recorded with the engine settings of every run (:func:`allocator_settings`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from typing import Final

THP_VARIABLE: Final = "MIMALLOC_ALLOW_THP"
DEFAULT_ALLOW_THP: Final = "0"

_state: dict[str, bool] = {}


def configure_allocator(environ: MutableMapping[str, str] | None = None) -> None:
    """Set :data:`THP_VARIABLE` to :data:`DEFAULT_ALLOW_THP` unless the environment already sets it; note
    whether DataFusion was already loaded (then the setting cannot apply to this process)."""
    env = os.environ if environ is None else environ
    if THP_VARIABLE not in env:
        env[THP_VARIABLE] = DEFAULT_ALLOW_THP
        _state["too_late"] = "datafusion" in sys.modules


def allocator_settings() -> dict[str, str]:
    """The allocator setting in force, as recorded with the engine settings.

    >>> sorted(allocator_settings())
    ['allocator_transparent_huge_pages']
    """
    value = os.environ.get(THP_VARIABLE, "(unset: DataFusion's default, on)")
    if _state.get("too_late"):
        value += " (not in force: datafusion was imported before codeanatomy_assets)"
    return {"allocator_transparent_huge_pages": f"{THP_VARIABLE}={value}"}
