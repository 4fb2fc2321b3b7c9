"""The asset factory: one pipeline spec in, Dagster assets out.

``extract_sources`` (when the spec has ``[extract]``) -> one asset per dataset registration -> one asset per
plan -> ``run_diagnostics_report``. Asset bodies only wire: they open the step's diagnostics, call a function
of :mod:`codeanatomy_assets.pipeline` or :mod:`codeanatomy_assets.report`, and translate the outcome.
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg

from codeanatomy_assets import pipeline
from codeanatomy_assets.defs import translate
from codeanatomy_assets.defs.envelope import record_envelope_if_missing
from codeanatomy_assets.defs.resources import CodeAnatomyResource
from codeanatomy_assets.diagnostics.taxonomy import Severity
from codeanatomy_assets.errors import DatasetError
from codeanatomy_assets.lineage import hooks as lineage
from codeanatomy_assets.plan_skip import code_version
from codeanatomy_assets.report.gates import GATES
from codeanatomy_assets.report.run_report import write_run_report
from codeanatomy_assets.spec import EXTRACT_DATASETS, PipelineSpec
from codeanatomy_assets.step import StepDiagnostics

EXTRACT_ASSET = "extract_sources"
REPORT_ASSET = "run_diagnostics_report"
DATASET_CHECKS = ("provider_mode", "delta_protocol_compatible", "delta_log_checkpoint")
PLAN_CHECKS = ("plan_phases_recorded", "scan_pruning_effective")


def build_assets(spec: PipelineSpec) -> list[dg.AssetsDefinition]:
    """Every asset of ``spec`` in lineage order.

    Each carries an automation condition, evaluated only while the ``codeanatomy_automation`` sensor runs
    (stopped until a user starts it): the extraction on the spec's cron schedule, every other asset eager
    (when an upstream asset is materialized again; plan skipping keeps unchanged plans cheap).
    """
    assets: list[dg.AssetsDefinition] = []
    if spec.extract is not None:
        on_cron = dg.AutomationCondition.on_cron(spec.schedule)
        assets.append(_extract_asset(spec).with_attributes(automation_condition=on_cron))
    assets += [_dataset_asset(spec, d.name) for d in spec.datasets]
    assets += [_plan_asset(spec, p.name) for p in spec.plans]
    assets.append(_report_asset(spec, [d.name for d in spec.datasets] + [p.name for p in spec.plans]))
    return assets


def _extract_asset(spec: PipelineSpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=EXTRACT_ASSET,
        group_name="extract",
        kinds={"python", "delta"},
        description=f"Analyse the Python tree ({spec.extract.source if spec.extract else ''}) into "
        f"{', '.join(EXTRACT_DATASETS)}",
        check_specs=[dg.AssetCheckSpec("all_files_parsed", asset=EXTRACT_ASSET)],
    )
    def extract_sources(
        context: dg.AssetExecutionContext, codeanatomy: CodeAnatomyResource
    ) -> dg.MaterializeResult:
        return _materialize_extract(context, codeanatomy, spec)

    return extract_sources


def _materialize_extract(
    context: dg.AssetExecutionContext, codeanatomy: CodeAnatomyResource, spec: PipelineSpec
) -> dg.MaterializeResult:
    """Analyse the source tree into the extract datasets; files that did not parse fail its WARN check."""
    with codeanatomy.step(context) as step:
        outcome = pipeline.run_extract(
            spec,
            codeanatomy.project_home(),
            step,
            progress=codeanatomy.progress,
            full=codeanatomy.full_rebuild,
        )
    return dg.MaterializeResult(
        metadata={**translate.extract_metadata(outcome), **translate.step_metadata(step)},
        check_results=[translate.extract_check(outcome)],
        data_version=translate.tree_version(outcome),
    )


def _dataset_check_specs(name: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec("provider_mode", asset=name, description="WARN when a fallback provider serves it"),
        dg.AssetCheckSpec(
            "delta_protocol_compatible",
            asset=name,
            blocking=True,
            description="ERROR (blocking): no plan runs on a table no provider reads correctly",
        ),
        dg.AssetCheckSpec("delta_log_checkpoint", asset=name, description="WARN: log health and checkpoints"),
        dg.AssetCheckSpec(
            "delta_layout_healthy",
            asset=name,
            description="WARN: small files, statistics, skew, vacuum debt, checkpoint lag (with the fix)",
        ),
    ]


def _dataset_asset(spec: PipelineSpec, name: str) -> dg.AssetsDefinition:
    dataset = spec.dataset(name)

    @dg.asset(
        name=name,
        group_name="datasets",
        kinds={"delta"},
        deps=[] if dataset.external else [EXTRACT_ASSET],
        check_specs=_dataset_check_specs(name),
        description=dataset.description or f"Delta dataset {name} registered with DataFusion",
        automation_condition=dg.AutomationCondition.eager(),
    )
    def dataset_asset(
        context: dg.AssetExecutionContext, codeanatomy: CodeAnatomyResource
    ) -> dg.MaterializeResult:
        return _materialize_dataset(context, codeanatomy, spec, name)

    return dataset_asset


def _materialize_dataset(
    context: dg.AssetExecutionContext, codeanatomy: CodeAnatomyResource, spec: PipelineSpec, name: str
) -> dg.MaterializeResult:
    """Register dataset ``name``; a registration that fails still materializes, with its failed checks."""
    home = codeanatomy.project_home()
    with codeanatomy.step(context) as step:
        error: DatasetError | None = None
        try:
            outcome = pipeline.run_dataset(
                spec, home, step, name, engine=codeanatomy.engine_settings(spec.engine)
            )
        except DatasetError as exc:  # materialize anyway: the blocking check stops the plans on it
            context.log.error(str(exc))
            outcome, error = None, exc
    facts = translate.dataset_facts(step.collector, name)
    return dg.MaterializeResult(
        metadata={**translate.dataset_metadata(facts, outcome), **translate.step_metadata(step)},
        check_results=translate.dataset_checks(facts, error, outcome.layout if outcome else None),
        data_version=translate.dataset_data_version(outcome),
    )


def _plan_check_specs(name: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "plan_phases_recorded", asset=name, description="every phase has hash, duration, span"
        ),
        dg.AssetCheckSpec("scan_pruning_effective", asset=name, description="WARN where pruning was lost"),
    ]


def _plan_asset(spec: PipelineSpec, name: str) -> dg.AssetsDefinition:
    plan = spec.plan(name)

    @dg.asset(
        name=name,
        group_name="plans",
        kinds={"datafusion", "delta"},
        deps=list(plan.inputs),
        check_specs=_plan_check_specs(name),
        description=plan.description or f"DataFusion plan {name}",
        metadata={"sql": dg.MetadataValue.md(f"```sql\n{plan.sql.strip()}\n```")},
        code_version=code_version(plan.sql),
        automation_condition=dg.AutomationCondition.eager(),
    )
    def plan_asset(
        context: dg.AssetExecutionContext, codeanatomy: CodeAnatomyResource
    ) -> dg.MaterializeResult:
        return _materialize_plan(context, codeanatomy, spec, name)

    return plan_asset


def _materialize_plan(
    context: dg.AssetExecutionContext, codeanatomy: CodeAnatomyResource, spec: PipelineSpec, name: str
) -> dg.MaterializeResult:
    """Run plan ``name`` and write its result (unless skipped: its inputs and SQL unchanged, the build not
    full); its metadata says whether it was skipped, or whether its optimized plan changed. Its OpenLineage
    START and COMPLETE or FAIL bracket it (:mod:`codeanatomy_assets.lineage.hooks`)."""
    home = codeanatomy.project_home()
    with codeanatomy.step(context) as step, lineage.plan_run(spec, home, step, name) as plan_lineage:
        outcome = plan_lineage.done(
            pipeline.run_plan(
                spec,
                home,
                step,
                name,
                options=codeanatomy.compile_options(step.run_id),
                engine=codeanatomy.engine_settings(spec.engine),
                full=codeanatomy.full_rebuild,
            )
        )
    return _plan_result(context, spec, step, outcome)


def _plan_result(
    context: dg.AssetExecutionContext,
    spec: PipelineSpec,
    step: StepDiagnostics,
    outcome: pipeline.PlanOutcome,
) -> dg.MaterializeResult:
    """A plan's materialization: its metadata and checks, and its output's Delta version as data version."""
    previous = None
    if outcome.skipped is None:  # a skipped plan planned nothing to compare
        previous = _previous_metadata(context, "plan_hash/optimized", [p.name for p in spec.plans])
    return dg.MaterializeResult(
        metadata={**translate.plan_metadata(outcome, previous), **translate.step_metadata(step)},
        check_results=translate.plan_checks(
            step.collector, context.asset_key.to_user_string(), outcome.skipped
        ),
        data_version=translate.delta_data_version(outcome.uri, outcome.version),
    )


def _report_asset(spec: PipelineSpec, upstream: Sequence[str]) -> dg.AssetsDefinition:
    @dg.asset(
        name=REPORT_ASSET,
        group_name="report",
        kinds={"markdown"},
        deps=list(upstream),
        check_specs=[dg.AssetCheckSpec(g.name, asset=REPORT_ASSET, description=g.description) for g in GATES],
        description="run_diagnostics_report.md of this run, and the acceptance gates as checks",
        automation_condition=dg.AutomationCondition.eager(),
    )
    def run_diagnostics_report(
        context: dg.AssetExecutionContext, codeanatomy: CodeAnatomyResource
    ) -> dg.MaterializeResult:
        return _materialize_report(context, codeanatomy, spec)

    return run_diagnostics_report


def _materialize_report(
    context: dg.AssetExecutionContext, codeanatomy: CodeAnatomyResource, spec: PipelineSpec
) -> dg.MaterializeResult:
    """Write the run's report; each acceptance gate is an ERROR check of the report asset."""
    home = codeanatomy.project_home()
    record_envelope_if_missing(context, codeanatomy, spec)
    with codeanatomy.step(context) as step:
        rendered = write_run_report(
            home, step.run_id, label=spec.label, baseline=spec.baseline, html=codeanatomy.html_in_step
        )
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(rendered.markdown),
            "path": dg.MetadataValue.path(str(rendered.path)),
            "html_report": dg.MetadataValue.path(str(rendered.html_path)),
            **translate.step_metadata(step),
        },
        check_results=[
            translate.check(g.name, passed=g.passed, severity=Severity.ERROR, explanation=g.explanation)
            for g in rendered.gates
        ],
    )


_PREVIOUS: dict[str, dict[dg.AssetKey, Any]] = {}
"""The latest materialization before this run of every plan asset, read once per run (this process)."""


def _previous_metadata(context: dg.AssetExecutionContext, key: str, plans: Sequence[str]) -> Any:
    """``key`` of the asset's materialization before this run (``None`` if there was none).

    The first plan step of a run asks the event log for every plan at once (one query instead of one per
    plan step: about 7 ms each on SQLite); a plan's latest materialization is never one of this run
    then, as every plan materializes once per run and after that first step asked.
    """
    run_id = context.run.run_id
    if run_id not in _PREVIOUS or context.asset_key not in _PREVIOUS[run_id]:
        _PREVIOUS.clear()  # one run at a time per process
        keys = {dg.AssetKey(name) for name in plans} | {context.asset_key}
        _PREVIOUS[run_id] = dict(context.instance.get_latest_materialization_events(keys))
    event = _PREVIOUS[run_id].get(context.asset_key)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get(key)
    return getattr(value, "value", value)
