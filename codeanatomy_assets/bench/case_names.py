"""The benchmark's case names: one list for the command line's choices and for the suite.

It imports nothing heavy, so ``codeanatomy bench --help`` lists the cases without loading the suite.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

CaseName = Literal[
    "overhead",
    "provider_modes",
    "log_health",
    "orchestration",
    "extraction",
    "report_scaling",
    "engines",
    "incremental",
]
CASES: Final[tuple[CaseName, ...]] = get_args(CaseName)
"""Every case, in the order the suite runs them."""
