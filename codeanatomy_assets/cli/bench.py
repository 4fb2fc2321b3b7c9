"""``codeanatomy bench``: run the benchmark cases and write their figures as one JSON file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

from cyclopts import Parameter

from codeanatomy_assets.bench.case_names import CaseName

QuickOption = Annotated[
    bool, Parameter(help="Smaller data, fewer repetitions, same cases (3-4 minutes on 2 cores).")
]
OutOption = Annotated[Path, Parameter(help="Where to write the JSON results.")]
CacheDirOption = Annotated[Path, Parameter(help="Cache of generated data (TPC-H), reused across runs.")]
CaseOption = Annotated[
    list[CaseName] | None, Parameter(help="Run only these cases (repeatable; default: all).")
]


def bench(
    *,
    quick: QuickOption = False,
    out: OutOption = Path("codeanatomy-bench.json"),
    cache_dir: CacheDirOption = Path("~/.cache/codeanatomy-bench"),
    case: CaseOption = None,
) -> int:
    """Measure diagnostics overhead, provider modes, log health, orchestration, extraction, report scaling
    and TPC-H across engines (DataFusion native, peers, the product's build path).

    Progress goes to stderr; the headline figures and goals, then the path of the JSON file, to stdout.
    Exit codes: 0 every case ran, 1 a case failed (its error is in the JSON), 2 usage error.
    """
    from codeanatomy_assets.bench.harness import write_json
    from codeanatomy_assets.bench.suite import CASES, BenchSettings, run_benchmark

    settings = (BenchSettings.quick_mode if quick else BenchSettings.full)(cache_dir)
    document = run_benchmark(settings, cases=tuple(case) if case else CASES)
    return _report(document, write_json(out, document))


def _report(document: dict[str, Any], path: Path) -> int:
    """Print the headline figures and the JSON file's path; 1 when a case failed (said on stderr), else 0."""
    from codeanatomy_assets.bench.suite import CASES, headline

    for line in headline(document):
        print(line)
    print(path)
    failed = [name for name in CASES if isinstance(document.get(name), dict) and "error" in document[name]]
    if failed:
        print(f"codeanatomy bench: case(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
