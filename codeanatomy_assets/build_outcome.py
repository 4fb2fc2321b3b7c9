"""The outcome of a build: what failed (steps with their root causes, checks, gates) and how it ended.

Read from the Dagster result of the build's job (:class:`JobEnding`) by :mod:`codeanatomy_assets.runner`,
which adds what only it knows (the report, the store's failures, a cancellation).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import dagster as dg

from codeanatomy_assets.defs.factory import REPORT_ASSET
from codeanatomy_assets.errors import clean_error_text

if TYPE_CHECKING:
    from dagster_shared.error import SerializableErrorInfo

JobResult = dg.ExecuteInProcessResult | dg.JobExecutionResult

_CHECK_FAILED: Final = "DagsterAssetCheckFailedError"
_PLAN_ERROR_RE: Final = re.compile(
    r"^plan '(?:[^']|'')*' failed in phase (?P<phase>\w+): (?:datafusion\.\w+: )?"
)
_SQL_PARSER_RE: Final = re.compile(r'SQL error: (?:ParserError|TokenizerError)\("(?P<text>.*)"\)')


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFailure:
    """A failed step of the job with its root cause in one line (full stack traces: the Dagster logs)."""

    step: str
    error_type: str
    """The class name of the step's own error (``PlanError``), or ``DagsterAssetCheckFailedError`` when a
    blocking check failed it."""
    cause: str


@dataclass(slots=True, kw_only=True)
class BuildOutcome:
    run_id: str
    success: bool
    report_path: Path
    dagster_run_id: str | None = None
    failed_steps: list[str] = field(default_factory=list)
    step_failures: list[StepFailure] = field(default_factory=list)
    """The failed steps of ``failed_steps`` with their root causes."""
    failed_gates: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    duration_ms: int | None = None
    store_failures: list[str] = field(default_factory=list)
    cancelled_by: str | None = None
    """``SIGINT``, ``SIGTERM`` or ``the Dagster UI`` when the run was cancelled."""
    cancel_signal: int | None = None

    @property
    def exit_code(self) -> int:
        """0 success; 128 + the signal's number when a signal cancelled it (130, 143); else 1."""
        if self.cancel_signal is not None:
            return 128 + self.cancel_signal
        if self.cancelled_by is not None:
            return 1
        return 0 if self.success and not self.failed_gates and not self.store_failures else 1

    def summary_lines(self) -> list[str]:
        if self.cancelled_by is not None:  # one line: the run stopped because it was asked to
            return [
                f"run {self.run_id}: cancelled by {self.cancelled_by} after {self.duration_ms} ms; "
                f"report: {self.report_path}"
            ]
        lines = [f"run {self.run_id}: {'completed' if self.success else 'failed'} in {self.duration_ms} ms"]
        causes = {f.step: f.cause for f in self.step_failures}
        lines += [
            f"  failed step: {s}: {causes[s]}" if s in causes else f"  failed step: {s}"
            for s in self.failed_steps
        ]
        lines += [f"  failed check: {c}" for c in self.failed_checks]
        lines += [f"  failed gate: {g}" for g in self.failed_gates]
        lines += [f"  diagnostics store failed: {f}" for f in self.store_failures]
        return lines


@dataclass(frozen=True, slots=True, kw_only=True)
class JobEnding:
    """How the build's Dagster job ended: its failed steps and checks, and whether the report ran."""

    dagster_run_id: str
    success: bool
    step_failures: list[StepFailure]
    failed_checks: list[str]
    report_materialized: bool

    @classmethod
    def read(cls, result: JobResult) -> JobEnding:
        return cls(
            dagster_run_id=result.run_id,
            success=result.success,
            step_failures=_step_failures(result),
            failed_checks=_failed_checks(result),
            report_materialized=_report_materialized(result),
        )

    @property
    def failed_steps(self) -> list[str]:
        """The failed steps, and the report when it did not run."""
        missing = [] if self.report_materialized else [f"{REPORT_ASSET} (not run: upstream failed)"]
        return [f.step for f in self.step_failures] + missing

    def run_error(self) -> BaseException | None:
        """The run's error: named after the first failed step's error class (``error.type``), its message
        naming every failed step with its root cause."""
        if self.success:
            return None
        if not self.step_failures:
            return RuntimeError("the run failed before any step failed")
        # Dagster keeps only the class name of a step's error: rebuild a class of that name, so the run
        # envelope's error.type reads e.g. "PlanError" rather than a wrapper's name.
        error_class = type(self.step_failures[0].error_type, (Exception,), {"__module__": "builtins"})
        return error_class("; ".join(f"step {f.step}: {f.cause}" for f in self.step_failures))


def _check_evaluations(result: JobResult) -> Iterator[tuple[dg.DagsterEvent, dg.AssetCheckEvaluation]]:
    """Each asset check evaluation of the run, with its event (for the step key)."""
    for event in result.all_events:
        evaluation = event.event_specific_data
        if isinstance(evaluation, dg.AssetCheckEvaluation):
            yield event, evaluation


def _failed_checks(result: JobResult) -> list[str]:
    failed = []
    for _event, evaluation in _check_evaluations(result):
        if not evaluation.passed:
            key = evaluation.asset_check_key
            failed.append(f"{key.asset_key.to_user_string()}:{key.name} ({evaluation.severity.value})")
    return sorted(failed)


def _step_failures(result: JobResult) -> list[StepFailure]:
    """Each failed step (sorted) with the root cause of its failure in one line."""
    blocking = _failed_blocking_checks(result)
    failures: dict[str, StepFailure] = {}
    for event in result.all_events:
        step = event.step_key or ""
        if event.is_step_failure and step not in failures:
            failures[step] = _step_failure(step, event.step_failure_data.error, blocking.get(step))
    return [failures[s] for s in sorted(failures)]


def _step_failure(
    step: str, info: SerializableErrorInfo | None, blocking_checks: list[str] | None
) -> StepFailure:
    """The failure of ``step`` from its error: the user's own error, or the blocking checks that failed it."""
    # Dagster wraps the asset's own error (DagsterExecutionStepExecutionError): report the user's.
    # (cls_name is None for an error Dagster did not get from an exception.)
    while info is not None and (info.cls_name or "").startswith("Dagster") and info.cause is not None:
        info = info.cause
    error_type = (info.cls_name if info is not None else None) or "StepFailure"
    if error_type == _CHECK_FAILED and blocking_checks:
        cause = "; ".join(blocking_checks)
    else:
        cause = _root_cause(info.message if info is not None else "", error_type)
    return StepFailure(step=step, error_type=error_type, cause=cause or "step failed")


def _failed_blocking_checks(result: JobResult) -> dict[str, list[str]]:
    """Per step: ``"<explanation> (check <name>)"`` of each blocking ERROR check that failed there."""
    found: dict[str, list[str]] = {}
    for event, evaluation in _check_evaluations(result):
        if evaluation.passed or not evaluation.blocking or evaluation.severity != dg.AssetCheckSeverity.ERROR:
            continue
        explanation = clean_error_text(evaluation.description or "failed")
        found.setdefault(event.step_key or "", []).append(f"{explanation} (check {evaluation.check_name})")
    return found


def _root_cause(message: str, error_type: str) -> str:
    """A step error's message as its root cause: one line, without the class name Dagster puts first, and
    for a plan, without the repeated plan name; a SQL parser error reads as the parser's own message.

    >>> _root_cause("x.PlanError: plan 'p' failed in phase logical: datafusion.sql_error: SQL error: "
    ...             'ParserError("Expected: an expression, found: EOF")', "PlanError")
    'SQL syntax error (phase logical): Expected: an expression, found: EOF'
    """
    text = clean_error_text(message)
    head, sep, rest = text.partition(": ")
    if sep and head.rsplit(".", 1)[-1] == error_type:
        text = rest
    plan = _PLAN_ERROR_RE.match(text)
    if plan is None:
        return text
    return _plan_cause(plan["phase"], text[plan.end() :])


def _plan_cause(phase: str, rest: str) -> str:
    """A plan error's cause after its ``failed in phase`` prefix; a SQL parser error as its own message."""
    parser = _SQL_PARSER_RE.fullmatch(rest)
    if parser is not None:
        unescaped = parser["text"].replace('\\"', '"')  # the parser's text is printed Rust-escaped
        return f"SQL syntax error (phase {phase}): {unescaped}"
    return f"failed in phase {phase}: {rest}"


def _report_materialized(result: JobResult) -> bool:
    return any(
        e.is_step_materialization and e.asset_key and e.asset_key.to_user_string() == REPORT_ASSET
        for e in result.all_events
    )
