"""Operator-level spans: a build's OTLP export holds, under each plan's execute span, one span per physical
operator with its name and metrics, nested as the operators are."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from codeanatomy_assets.diagnostics.otel_config import TelemetryConfig
from codeanatomy_assets.runner import BuildRequest, run_build
from codeanatomy_assets_tests.otlp_receiver import OtlpReceiver, ReceivedSpan


def test_operator_spans_in_the_otlp_export_of_a_build(tmp_path: Path) -> None:
    orders = tmp_path / "orders"
    write_deltalake(
        str(orders), pa.table({"id": list(range(1000)), "kind": [f"k{i % 7}" for i in range(1000)]})
    )
    config = tmp_path / "codeanatomy.toml"
    config.write_text(
        f'[datasets.orders]\nuri = "{orders}"\n'
        '[plans.kinds]\nsql = "select kind, count(*) as n from orders where id > 10 group by kind"\n'
    )
    with OtlpReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_TRACES_EXPORTER": "otlp"}
        outcome = run_build(
            BuildRequest.resolve(config=config, home=tmp_path / "home"),
            run_id=str(uuid.uuid4()),
            telemetry_config=TelemetryConfig.resolve(env),
        )
    assert outcome.success, outcome.summary_lines()
    spans = {s.span_id: s for s in receiver.spans}
    execute = next(s for s in receiver.spans if s.name == "datafusion.plan.execute")
    operators = [s for s in receiver.spans if s.name.startswith("datafusion.operator.")]
    assert {s.attributes["datafusion.operator.name"] for s in operators} >= {
        "AggregateExec",
        "ProjectionExec",
    }

    def root_of(span: ReceivedSpan) -> ReceivedSpan:
        while span.parent_span_id in spans and span.name.startswith("datafusion.operator."):
            span = spans[span.parent_span_id]
        return span

    for span in operators:
        assert span.trace_id == execute.trace_id
        assert root_of(span).span_id == execute.span_id  # nested under the execute span
        parent = spans[span.parent_span_id]
        depth = span.attributes["datafusion.operator.depth"]
        assert depth == (0 if parent is execute else parent.attributes["datafusion.operator.depth"] + 1)
        assert execute.start_unix_nano <= span.start_unix_nano <= span.end_unix_nano <= execute.end_unix_nano
    timed = [s for s in operators if "datafusion.operator.elapsed_compute_ms" in s.attributes]
    assert timed and all(s.attributes["datafusion.operator.elapsed_compute_ms"] >= 0 for s in timed)
    top = next(s for s in operators if s.attributes["datafusion.operator.depth"] == 0)
    assert top.attributes["datafusion.operator.output_rows"] == 7  # the seven kinds
