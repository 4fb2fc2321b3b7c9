"""The HTML report: written by every build, rendered for any past run, self-contained (no request leaves
the file in Chromium), and showing its plots (a screenshot kept in docs/screenshots)."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Final

import pytest

from codeanatomy_assets.build_outcome import BuildOutcome
from codeanatomy_assets.runner import BuildRequest, run_build
from codeanatomy_assets_tests.cli import run_cli
from codeanatomy_assets_tests.servers import ensure_debian_package
from codeanatomy_assets_tests.test_ui import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, UPDATE_SCREENSHOTS_ENV

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="pip install playwright (part of the test extra)"
)

FIXTURE: Final = Path(__file__).parent / "fixtures" / "sample_tree"


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[BuildOutcome]]:
    home = tmp_path_factory.mktemp("html") / "home"
    request = BuildRequest.resolve(source=FIXTURE, home=home, full=True)
    return home, [run_build(request, run_id=str(uuid.uuid4())) for _ in range(3)]


def test_every_build_writes_the_html_next_to_the_markdown(builds: tuple[Path, list[BuildOutcome]]) -> None:
    _, outcomes = builds
    for index, outcome in enumerate(outcomes):
        page = outcome.report_path.with_name("run_diagnostics_report.html").read_text()
        assert page.startswith("<!DOCTYPE html>") and outcome.run_id in page
        # Phases and files per scan; the trends from the second run on (one run has no trend).
        assert page.count("<svg") == (2 if index == 0 else 3)
        # Full builds: the Rebuild section says so and lists every plan as run, none skipped.
        assert "<h2>Rebuild</h2><p><strong>full</strong>: a full rebuild was asked for (--full)" in page
        assert "<h3>Plans run (4)</h3>" in page and "<h3>Plans skipped (0)" in page
        assert "<script" not in page and not re.search(
            r"""(src|href)=["']?https?:""", page
        )  # nothing fetched


def test_report_format_html_renders_a_past_run(
    builds: tuple[Path, list[BuildOutcome]], tmp_path: Path
) -> None:
    home, outcomes = builds
    done = run_cli(
        "report", "--home", str(home), "--run-id", outcomes[0].run_id, "--format", "html", cwd=tmp_path
    )
    assert done.returncode in (0, 1), done.stderr
    assert outcomes[0].run_id in done.stdout and "<svg" in done.stdout


def test_the_html_opens_offline_in_chromium(builds: tuple[Path, list[BuildOutcome]]) -> None:
    ensure_debian_package("chromium", CHROMIUM.exists)
    _, outcomes = builds
    path = outcomes[-1].report_path.with_name("run_diagnostics_report.html")
    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1600})
            page.route("**/*", lambda route: (requests.append(route.request.url), route.continue_())[-1])
            page.goto(path.as_uri())
            assert page.locator("svg").count() == 3
            assert page.get_by_role("heading", name="Plan phases").is_visible()
            box = page.locator("svg").first.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 100
            shot = path.with_name("report.png")
            page.screenshot(path=str(shot), full_page=False)
            if os.environ.get(UPDATE_SCREENSHOTS_ENV):
                (SCREENSHOTS / "html_report.png").write_bytes(shot.read_bytes())
        finally:
            browser.close()
    assert requests == [path.as_uri()]  # the file itself, nothing else
