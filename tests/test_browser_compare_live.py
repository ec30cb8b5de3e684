"""Compare live in a real browser: Home's "Compare activations" starts three tiny searches
(softmax, sigmoid, CRB) as a group and opens the aligned view, whose columns all gain points
while the runs go; at the end, "Open in Compare" opens the group on Compare. Screenshots go to
screenshots/compare_live_*.png: look at them.

    python -m pytest -q -m browser tests/test_browser_compare_live.py
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "screenshots"
CHROMIUM = "/usr/bin/chromium"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

if sync_playwright is None or not os.path.exists(CHROMIUM):
    pytest.skip(f"browser tests need the playwright package and {CHROMIUM}", allow_module_level=True)

from tests.test_browser import _no_exceptions, _shot, chromium_page, serve_app  # noqa: E402

# Point counts of each column's loss chart (SVG), in page order: the columns' order.
LOSS_POINTS_JS = """() => Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]'))
  .filter(c => Array.from(c.querySelectorAll('g.role-title text')).some(t => t.textContent === 'Loss'))
  .map(c => Array.from(c.querySelectorAll('g.mark-line path')).reduce(
      (s, p) => s + ((p.getAttribute('d') || '').match(/[MLHV]/g) || []).length, 0))"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve_app(tmp_path_factory.mktemp("browser_compare_live"), "epochs=3,iters_per_epoch=20")


@pytest.fixture(scope="module")
def page(server):
    SHOTS.mkdir(exist_ok=True)  # shared with the other browser tests: nothing of theirs is removed
    yield from chromium_page()


def test_compare_activations_runs_side_by_side_live(server, page):
    page.goto(server)
    button = page.get_by_role("button", name="Compare activations")
    button.wait_for()
    page.get_by_text("searches take about").wait_for()
    _no_exceptions(page)
    button.click()
    page.wait_for_url("**/compare_live?runs=*")
    page.set_viewport_size({"width": 1400, "height": 5200})  # every row in view: all get drawn
    for label in ("activation=softmax", "activation=sigmoid", "activation=crb"):
        page.get_by_text(label).first.wait_for()

    # Each column's loss chart gains points while we watch (the third run starts when a slot frees).
    seen: list[list[int]] = [[], [], []]
    deadline = time.monotonic() + 240
    shot_taken = False
    while time.monotonic() < deadline:
        counts = page.evaluate(LOSS_POINTS_JS)
        for k, n in enumerate(counts[:3]):
            if n and (not seen[k] or n != seen[k][-1]):
                seen[k].append(n)
        if not shot_taken and len(counts) == 3 and all(len(s) >= 2 for s in seen) \
                and page.get_by_text("Live ·").count() > 0:
            _no_exceptions(page)
            _shot(page, "compare_live_running")
            page.set_viewport_size({"width": 1400, "height": 5200})
            shot_taken = True
        if shot_taken and all(len(s) >= 3 for s in seen):
            break
        page.wait_for_timeout(400)
    assert all(any(b > a for a, b in zip(s, s[1:])) for s in seen), f"loss points per column: {seen}"
    assert shot_taken

    # The runs end: the page stops refreshing, keeps the charts and offers Compare.
    page.get_by_role("button", name="Open in Compare").wait_for(timeout=240_000)
    assert page.get_by_text("Live ·").count() == 0
    final = page.evaluate(LOSS_POINTS_JS)
    assert len(final) == 3 and all(n > 0 for n in final), final
    assert page.get_by_text("edges kept by some run differ").count() == 1
    _no_exceptions(page)
    _shot(page, "compare_live_finished")

    page.get_by_role("button", name="Open in Compare").click()
    page.wait_for_url("**/compare?study=activations*")
    page.get_by_text("Genotype agreement").first.wait_for()
    _no_exceptions(page)
    page.set_viewport_size({"width": 1400, "height": 1000})
