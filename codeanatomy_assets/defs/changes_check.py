"""The ``no_change_since_last_run`` check (WARN) on every dataset and plan asset.

One multi-asset check runs once the run's datasets and plans have materialized: it compares the run with
the previous completed run of the pipeline (or the spec's ``[pipeline] baseline``) as the report's
"Changes since the last run" section does (:mod:`codeanatomy_assets.report.changes`), and fails the check
of each asset with a warn-level change (a slower phase, lost pruning, a new warning, protocol drift, another
provider); info-level changes (a new plan fingerprint, row counts) are listed in its metadata.
"""

from collections.abc import Iterator, Sequence
from typing import Final

import dagster as dg

from codeanatomy_assets.defs.resources import CodeAnatomyResource, diagnostics_run_id
from codeanatomy_assets.report.changes import changes_section
from codeanatomy_assets.report.sections import collect_report
from codeanatomy_assets.spec import PipelineSpec

CHANGES_CHECK: Final = "no_change_since_last_run"


def _result(asset: str, changes: Sequence[dict], compared: str | None) -> dg.AssetCheckResult:
    mine = [c for c in changes if c["asset"] == asset]
    warnings = [c for c in mine if c["severity"] in ("warn", "error")]
    if compared is None:
        explanation = "no earlier completed run of this pipeline to compare with"
    else:
        explanation = (
            "; ".join(c["message"] for c in warnings) or f"no warn-level change since run {compared}"
        )
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=CHANGES_CHECK,
        passed=not warnings,
        severity=dg.AssetCheckSeverity.WARN,
        description=explanation[:1000],
        metadata={"compared_with": compared or "", "changes": dg.MetadataValue.json(mine)},
    )


def changes_check(spec: PipelineSpec) -> dg.AssetChecksDefinition:
    """The multi-asset check over every dataset and plan of ``spec``."""
    assets = [d.name for d in spec.datasets] + [p.name for p in spec.plans]

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(CHANGES_CHECK, asset=a, description="WARN: what got worse since the last run")
            for a in assets
        ],
        name="changes_since_last_run",
        can_subset=True,
    )
    def changes_since_last_run(
        context: dg.AssetCheckExecutionContext, codeanatomy: CodeAnatomyResource
    ) -> Iterator[dg.AssetCheckResult]:
        store = codeanatomy.project_home().diagnostics_store()
        current = collect_report(store, diagnostics_run_id(context.run))
        section = changes_section(store, current, baseline=spec.baseline)
        selected = {key.asset_key.to_user_string() for key in context.selected_asset_check_keys}
        for asset in (a for a in assets if a in selected):
            yield _result(asset, section["changes"], section["compared_with"])

    return changes_since_last_run
