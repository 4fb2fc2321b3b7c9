"""CodeAnatomy Assets: run and understand Delta Lake + DataFusion pipelines, orchestrated by Dagster.

The public API, declared once in ``__all__`` (a test keeps it honest). Names load on first use (PEP 562),
so ``import codeanatomy_assets`` and ``codeanatomy --help`` stay cheap.

>>> from codeanatomy_assets import Severity
>>> Severity.WARN.rank > Severity.INFO.rank
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from codeanatomy_assets.allocator import configure_allocator
from codeanatomy_assets.exports import lazy_exports

configure_allocator()  # before anything imports datafusion: its allocator reads the setting once, at load

if TYPE_CHECKING:
    from codeanatomy_assets.build_outcome import BuildOutcome
    from codeanatomy_assets.build_request import BuildRequest, Executor
    from codeanatomy_assets.component import CodeAnatomyPipeline
    from codeanatomy_assets.defs.definitions import build_definitions
    from codeanatomy_assets.delta.doctor import diagnose
    from codeanatomy_assets.delta.provider import ProviderMode, RegisteredTable
    from codeanatomy_assets.delta.registration import register_dataset
    from codeanatomy_assets.diagnostics.events import DiagnosticEvent
    from codeanatomy_assets.diagnostics.sinks import DiagnosticsCollector, DiagnosticsSink
    from codeanatomy_assets.diagnostics.store import DeltaDiagnosticsStore
    from codeanatomy_assets.diagnostics.taxonomy import Category, Severity
    from codeanatomy_assets.engine.options import CompileOptions
    from codeanatomy_assets.engine.plan import execute_plan
    from codeanatomy_assets.errors import (
        CodeAnatomyError,
        ConfigError,
        DatasetError,
        DiagnosticsError,
        PlanError,
        ProtocolIncompatibleError,
        SourceTreeError,
    )
    from codeanatomy_assets.home import ProjectHome
    from codeanatomy_assets.report.run_report import build_report
    from codeanatomy_assets.runner import run_build
    from codeanatomy_assets.spec import PipelineSpec, load_spec

_MODULE_OF: Final[dict[str, str]] = {
    "BuildOutcome": "build_outcome",
    "BuildRequest": "build_request",
    "Category": "diagnostics.taxonomy",
    "CodeAnatomyError": "errors",
    "CodeAnatomyPipeline": "component",
    "CompileOptions": "engine.options",
    "ConfigError": "errors",
    "DatasetError": "errors",
    "DeltaDiagnosticsStore": "diagnostics.store",
    "DiagnosticEvent": "diagnostics.events",
    "DiagnosticsCollector": "diagnostics.sinks",
    "DiagnosticsError": "errors",
    "DiagnosticsSink": "diagnostics.sinks",
    "Executor": "build_request",
    "PipelineSpec": "spec",
    "PlanError": "errors",
    "ProjectHome": "home",
    "ProtocolIncompatibleError": "errors",
    "ProviderMode": "delta.provider",
    "RegisteredTable": "delta.provider",
    "Severity": "diagnostics.taxonomy",
    "SourceTreeError": "errors",
    "build_definitions": "defs.definitions",
    "build_report": "report.run_report",
    "diagnose": "delta.doctor",
    "execute_plan": "engine.plan",
    "load_spec": "spec",
    "register_dataset": "delta.registration",
    "run_build": "runner",
}

__all__ = [
    "BuildOutcome",
    "BuildRequest",
    "Category",
    "CodeAnatomyError",
    "CodeAnatomyPipeline",
    "CompileOptions",
    "ConfigError",
    "DatasetError",
    "DeltaDiagnosticsStore",
    "DiagnosticEvent",
    "DiagnosticsCollector",
    "DiagnosticsError",
    "DiagnosticsSink",
    "Executor",
    "PipelineSpec",
    "PlanError",
    "ProjectHome",
    "ProtocolIncompatibleError",
    "ProviderMode",
    "RegisteredTable",
    "Severity",
    "SourceTreeError",
    "build_definitions",
    "build_report",
    "diagnose",
    "execute_plan",
    "load_spec",
    "register_dataset",
    "run_build",
]


__getattr__, __dir__ = lazy_exports(__name__, _MODULE_OF)
