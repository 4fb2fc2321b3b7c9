"""The Dagster UI as a user sees it, in a real browser: two builds of the fixture tree, then
``dagster-webserver`` over the same home (127.0.0.1) driven by Playwright in Debian's Chromium (FACTS #23).

It asserts what the README promises a user sees: the lineage from ``extract_sources`` through the datasets
and plans to ``run_diagnostics_report``, the checks with their states (the WARN on
``extract_sources``/``all_files_parsed``), the report markdown in the report asset's metadata, and a numeric
metadata entry (``phase_ms/execute``) plotted across both runs.

Screenshots are taken every run (into the test's temporary folder); with ``CODEANATOMY_UPDATE_SCREENSHOTS=1``
they replace the ones under ``docs/screenshots/`` that the README shows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from codeanatomy_assets.defs.factory import EXTRACT_ASSET, REPORT_ASSET
from codeanatomy_assets.runner import BuildRequest, run_build
from codeanatomy_assets_tests.servers import dagster_webserver, ensure_debian_package

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="pip install playwright (part of the test extra)"
)
expect = sync_api.expect

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
FIXTURE: Final = Path(__file__).parent / "fixtures" / "sample_tree"
SCREENSHOTS: Final = REPO_ROOT / "docs" / "screenshots"
UPDATE_SCREENSHOTS_ENV: Final = "CODEANATOMY_UPDATE_SCREENSHOTS"
CHROMIUM: Final = Path("/usr/bin/chromium")
# No first-run work and no background traffic: the machine reaches nothing beyond 127.0.0.1.
CHROMIUM_ARGS: Final = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-proxy-server",
]
RUNS: Final = ("00000000-0000-4000-8000-0000000000c1", "00000000-0000-4000-8000-0000000000c2")
DATASETS: Final = ("source_files", "symbols", "imports", "calls")
PLANS: Final = ("module_dependencies", "call_edges", "module_metrics", "package_hotspots")
TIMEOUT_MS: Final = 30_000
VIEWPORT: Final = {"width": 1280, "height": 900}
CONTENT: Final = {"x": 240, "y": 0, "width": 1040, "height": 900}
"""The page right of Dagster's navigation column: what the screenshots keep."""


@dataclass(slots=True)
class UI:
    """The webserver's base URL, one browser page, and where screenshots go."""

    base: str
    page: Page
    shots: Path

    def open(self, path: str) -> Page:
        self.page.goto(f"{self.base}{path}")
        return self.page

    def screenshot(self, name: str, target: Locator | None = None) -> Path:
        """A PNG of the visible part of ``target`` (a locator), or of the page right of the navigation.

        Copied to docs/screenshots when ``CODEANATOMY_UPDATE_SCREENSHOTS=1``.
        """
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), clip=CONTENT if target is None else _visible_box(target))
        if os.environ.get(UPDATE_SCREENSHOTS_ENV) == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, SCREENSHOTS / path.name)
        return path


def _visible_box(target: Locator) -> dict[str, float]:
    box = target.bounding_box()
    assert box is not None, "the element to photograph is not on the page"
    top, left = max(box["y"], 0.0), max(box["x"], 0.0)
    bottom = min(box["y"] + box["height"], float(VIEWPORT["height"]))
    right = min(box["x"] + box["width"], float(VIEWPORT["width"]))
    return {"x": left, "y": top, "width": right - left, "height": bottom - top}


def _build_twice(home: Path) -> None:
    """Two builds whose plans both run (the second is full: an incremental one would skip them all)."""
    for run_id in RUNS:
        full = run_id != RUNS[0]
        outcome = run_build(BuildRequest.resolve(source=FIXTURE, home=home, full=full), run_id=run_id)
        assert outcome.success, outcome.failed_steps


def _webserver_env(home: Path) -> dict[str, str]:
    """The same home, source tree and instance as the builds, so the code location matches their runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CODEANATOMY_"))}
    env.update(
        DAGSTER_HOME=str(home / "dagster"), CODEANATOMY_HOME=str(home), CODEANATOMY_SOURCE=str(FIXTURE)
    )
    return env


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    ensure_debian_package("chromium", CHROMIUM.exists)
    root = tmp_path_factory.mktemp("ui")
    home = root / "home"
    _build_twice(home)
    workspace = REPO_ROOT / "workspace.yaml"
    log = root / "webserver.log"
    with (
        dagster_webserver(workspace, env=_webserver_env(home), log=log) as base,
        sync_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(TIMEOUT_MS)
            _skip_community_dialog(page)
            yield UI(base=base, page=page, shots=root)
        finally:
            browser.close()


def _skip_community_dialog(page: Page) -> None:
    """Press "Skip" on the "Join the Dagster community" dialog whenever it covers the page."""
    dialog = page.get_by_role("dialog").filter(has_text="Join the Dagster community")
    page.add_locator_handler(dialog, lambda found: found.get_by_role("button", name="Skip").click())


def _shown(name: str, labels: list[str]) -> bool:
    """Whether a graph shows ``name``: in full, or cut in the middle (``modu…_dependencies``)."""
    for label in labels:
        head, cut, tail = label.partition("…")
        if label == name or (cut and name.startswith(head) and name.endswith(tail)):
            return True
    return False


def test_the_lineage_runs_from_extraction_through_datasets_and_plans_to_the_report(ui: UI) -> None:
    page = ui.open(f"/assets/{REPORT_ASSET}?view=lineage&lineageScope=upstream")
    page.get_by_role("button", name="All", exact=True).click()  # every level upstream, not only the nearest
    nodes = page.locator("[class*=assetName]")
    expect(nodes).to_have_count(2 + len(DATASETS) + len(PLANS))
    # Green: materialized by a successful run. Every asset upstream of the report must be green; the report
    # itself is the focused node, whose box the UI sometimes draws with its selection colour instead.
    materialized = page.locator("[class*=AssetNodeBox][style*=green]")
    upstream = 1 + len(DATASETS) + len(PLANS)
    # The statuses arrive after the graph is drawn; on a loaded machine that took more than the 5 s default.
    expect(materialized.nth(upstream - 1)).to_be_visible(timeout=30_000)
    assert materialized.count() in (upstream, upstream + 1)
    labels = nodes.all_inner_texts()
    for name in (EXTRACT_ASSET, *DATASETS, *PLANS, REPORT_ASSET):
        assert _shown(name, labels), (name, labels)
    for group in ("extract", "datasets", "plans", "report"):
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    ui.screenshot("lineage")
    # One path, edge by edge, as the asset page lists it: extract_sources -> calls -> call_edges -> report.
    page = ui.open("/assets/calls")
    lineage = page.get_by_text("Upstream assets").locator("xpath=../..")
    expect(lineage).to_contain_text(EXTRACT_ASSET)
    expect(lineage).to_contain_text("call_edges")
    expect(lineage).to_contain_text(REPORT_ASSET)


def test_the_checks_show_the_warning_on_extraction_and_the_passing_dataset_checks(ui: UI) -> None:
    page = ui.open(f"/assets/{EXTRACT_ASSET}?view=checks")
    check = page.locator("[title=all_files_parsed]").locator("xpath=../..")
    expect(check).to_contain_text("Failed")
    expect(check.get_by_role("img", name="warning_outline")).to_be_visible()  # a WARN, not an ERROR
    expect(page.get_by_text("2 of 11 files could not be analysed").first).to_be_visible()
    ui.screenshot("checks")
    page = ui.open("/assets/calls?view=checks")
    for name in ("provider_mode", "delta_protocol_compatible", "delta_log_checkpoint"):
        expect(page.locator(f"[title={name}]").locator("xpath=../..")).to_contain_text("Succeeded")
    page.locator("[title=delta_protocol_compatible]").click()  # the ERROR check that guards the plans
    expect(page.get_by_text("This is a blocking asset check.")).to_be_visible()


def test_the_report_markdown_is_in_the_report_assets_metadata(ui: UI) -> None:
    page = ui.open(f"/assets/{REPORT_ASSET}")
    page.get_by_text("[Show Markdown]").first.click()
    # The community dialog may open over it at any time (its handler runs on actions, not assertions).
    dialog = page.get_by_role("dialog").filter(has_text="Run diagnostics report: codeanatomy_build")
    expect(dialog).to_contain_text("Run diagnostics report: codeanatomy_build")
    for section in (
        "Acceptance gates",
        "Provider modes",
        "Delta log health",
        "Plan-phase timings",
        "Scan pruning",
    ):
        expect(dialog).to_contain_text(section)
    expect(dialog).to_contain_text(RUNS[-1])
    dialog.get_by_text("Run diagnostics report: codeanatomy_build").scroll_into_view_if_needed()
    ui.screenshot("report", dialog)
    page.keyboard.press("Escape")


def test_a_plans_phase_timing_is_plotted_across_both_runs(ui: UI) -> None:
    page = ui.open("/assets/module_metrics?view=events")
    entries = page.locator("[data-index]").filter(has=page.get_by_role("img", name="run_success"))
    expect(entries).to_have_count(len(RUNS))
    for entry, run_id in zip(entries.all(), reversed(RUNS), strict=True):  # newest first
        entry.click()
        expect(page.get_by_text("Materialized in run").locator("xpath=..")).to_contain_text(run_id[:8])
        expect(page.get_by_text("phase_ms/execute", exact=True)).to_be_visible()
    page = ui.open("/assets/module_metrics")
    page.get_by_role("button", name="Plots").click()
    title = page.get_by_text("phase_ms/execute", exact=True)
    chart = title.locator("xpath=../..")
    canvas = chart.locator("canvas")
    expect(canvas).to_be_visible()
    assert _drawn_pixels(canvas) > 500  # the line through the two runs' values is drawn
    chart.scroll_into_view_if_needed()
    ui.screenshot("plot", chart)


def _drawn_pixels(canvas: Locator) -> int:
    return int(
        canvas.evaluate(
            """(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
        )
    )
