"""The app in a real browser: `streamlit run app.py` on a free port against a temporary store,
driven by headless Chromium through Playwright (docs/testing.md "Real browser").

The Home page's demo is made tiny through $PRIME_EXPLORER_DEMO_PRESET=tiny and
$PRIME_EXPLORER_DEMO_OVERRIDES (see app_state.py) so the run takes seconds. Screenshots of every
page go to screenshots/ (git-ignored): look at them, an empty chart or a spinner is a failure a
DOM assertion can miss.

    python -m pytest -q -m browser tests/test_browser.py
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from scripts.serve import CHARTS_JS

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "screenshots"
CHROMIUM = "/usr/bin/chromium"
DEMO_ITERATIONS = 3 * 16  # epochs x iters_per_epoch below

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

if sync_playwright is None or not os.path.exists(CHROMIUM):
    pytest.skip(f"browser tests need the playwright package and {CHROMIUM} "
                "(apt-get install chromium; pip install playwright)", allow_module_level=True)

LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run",
               "--disable-dev-shm-usage"]

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_app(tmp: Path, demo_overrides: str):
    """Yields the URL of `streamlit run app.py` on a free port against a store in ``tmp``, its
    demo the tiny preset with ``demo_overrides``; at the end, stops it and checks that its log
    holds no traceback."""
    port = _free_port()
    log_path = tmp / "server.log"
    env = {**os.environ, "PRIME_EXPLORER_DB": str(tmp / "explorer.sqlite"),
           "PRIME_EXPLORER_DEMO_PRESET": "tiny",
           "PRIME_EXPLORER_DEMO_OVERRIDES": demo_overrides,
           "OMP_WAIT_POLICY": "PASSIVE"}
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("streamlit did not start:\n" + log_path.read_text()[-3000:])
        time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    text = log_path.read_text()
    assert "Traceback" not in text, text[-5000:]
    assert proc.returncode in (0, -15), f"server exit {proc.returncode}\n{text[-3000:]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve_app(tmp_path_factory.mktemp("browser"), "epochs=3,iters_per_epoch=16")


def chromium_page(width: int = 1400, height: int = 1000):
    """Yields a page of headless Chromium, closed at the end."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        pg = browser.new_page(viewport={"width": width, "height": height})
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


@pytest.fixture(scope="module")
def page(server):
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir()
    yield from chromium_page()


# Streamlit scrolls inside its own container, so full_page alone captures one screen: grow the
# viewport to the content's height for the shot, then restore it.
CONTENT_HEIGHT_JS = """() => Math.max(document.body.scrollHeight, ...Array.from(
    document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"], section'))
    .map(e => e.scrollHeight))"""


def _shot(page, name: str) -> None:
    page.wait_for_timeout(800)  # let charts finish their transitions
    size = page.viewport_size
    height = page.evaluate(CONTENT_HEIGHT_JS)
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(height + 40, 12000))})
    # Streamlit draws a chart only once it scrolls into view, and redraws after a resize: wait
    # until every Plotly chart holds its traces (a figure still waiting for data has none) and
    # every Vega-Lite chart its marks.
    try:
        page.wait_for_function("""() => Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"]'))
            .every(c => c.querySelectorAll('.main-svg .trace, .main-svg .annotation').length > 0)
            && Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]'))
            .every(c => c.querySelectorAll('g.mark-line, g.mark-symbol, canvas.marks').length > 0)""",
                               timeout=20_000)
    except PlaywrightTimeout:
        pass  # take the shot anyway: an empty chart in it is what a reader should see
    page.wait_for_timeout(700)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def _no_exceptions(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.inner_text("body")[:3000]


def _nav(page, label: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=label).first.click()
    page.wait_for_function(
        "t => Array.from(document.querySelectorAll('h1')).some(h => h.innerText.includes(t))",
        arg={"Launch": "Launch a search", "Runs": "Runs", "Monitor": "Monitor", "Home": "PRIME Explorer"}[label])


def test_a_link_into_a_page_gets_the_whole_app_on_a_fresh_server(server, page):
    # Must run first: until some session has run app.py, Streamlit serves /monitor from
    # pages/monitor.py alone (its legacy pages-directory mode); app_state.ensure_app_navigation
    # reruns it through app.py.
    page.goto(server + "/monitor?run=1")
    page.get_by_text("Live runs:").wait_for()
    nav = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
    assert any("Home" in t for t in nav) and not any(t.strip() == "app" for t in nav), nav
    page.get_by_text("No runs yet").wait_for()
    _no_exceptions(page)


def test_demo_runs_live_in_the_browser(server, page):
    page.goto(server)
    demo = page.get_by_role("button", name="Run the demo")
    demo.wait_for()
    _no_exceptions(page)
    _shot(page, "01_home")

    demo.click()
    page.wait_for_url("**/monitor?run=*")
    # A tall window shows every panel at once (Streamlit draws charts only when in view).
    page.set_viewport_size({"width": 1400, "height": 4800})
    page.get_by_text("Operation weights per edge").wait_for()

    # The accuracy chart (the page's last line chart) gains points over several refreshes.
    page.wait_for_function(f"() => ({CHARTS_JS})().length >= 7")
    # The weight grid is drawn on a canvas (the first chart), the others as SVG.
    page.wait_for_function(f"() => ({CHARTS_JS})()[0].ink > 0")
    grid_first = page.evaluate(CHARTS_JS)[0]["canvas"]
    assert grid_first is not None
    # A chart whose spec stays the same gets its new data in place: count the charts drawn
    # afresh from here on (a remount at every refresh would add one per chart each time).
    page.evaluate("""() => { window.__drawn = 0; const fresh = 'svg.marks, canvas.marks';
        new MutationObserver(ms => ms.forEach(m => m.addedNodes
        .forEach(n => { if (n.nodeType === 1 && (n.matches(fresh) || n.querySelector(fresh)))
                          window.__drawn++; }))).observe(document.body, {childList: true, subtree: true});
        // Streamlit's stale fade: an opacity transition on what a script run has not redrawn yet.
        window.__fades = 0; document.addEventListener('transitionrun',
            e => { if (e.propertyName === 'opacity') window.__fades++; }, true); }""")
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        counts = [c["points"] for c in page.evaluate(CHARTS_JS)]
        if counts:
            if not seen or counts[-1] != seen[-1]:
                seen.append(counts[-1])
            if len(seen) >= 3 and page.get_by_text("Live ·").count() > 0:
                break
        page.wait_for_timeout(250)
    growth = [b for a, b in zip(seen, seen[1:]) if b > a]
    assert len(growth) >= 2, f"accuracy chart point counts seen: {seen}"
    # The Monitor turns that fade off: no element starts fading at a refresh.
    fades = page.evaluate("() => window.__fades")
    assert fades == 0, f"{fades} opacity transitions over {len(seen) - 1} refreshes"
    drawn = page.evaluate("() => window.__drawn")
    # 7 charts (the weight grid, then the six of panels 2-5) over len(seen) - 1 >= 2 refreshes;
    # allow one redraw each (a resize redraws).
    assert drawn <= 7, f"line charts drawn afresh {drawn} times over {len(seen) - 1} refreshes"

    # Both cells are drawn by graphviz with their nodes (2 inputs, 4 nodes, the output).
    page.wait_for_function(
        """() => { const g = document.querySelectorAll('[data-testid="stGraphVizChart"] svg');
                   return g.length >= 2 && Array.from(g).every(s => s.querySelectorAll('g.node').length >= 7); }""")
    _no_exceptions(page)
    _shot(page, "02_monitor_live")

    # The run finishes; the page stops refreshing and keeps every chart.
    page.get_by_text(f"{DEMO_ITERATIONS} / {DEMO_ITERATIONS} iterations").first.wait_for(timeout=180_000)
    page.wait_for_function("() => !document.body.innerText.includes('Live ·')", timeout=30_000)
    charts = page.evaluate(CHARTS_JS)
    assert len(charts) >= 7 and charts[0]["ink"] > 0 and all(c["points"] > 0 for c in charts[1:]), charts
    # the grid's drawing changed as the run went on (its architecture steps, then its end)
    assert charts[0]["canvas"] != grid_first
    _no_exceptions(page)
    _shot(page, "03_monitor_finished")
    page.set_viewport_size({"width": 1400, "height": 1000})


def test_every_page_renders(server, page):
    # a link with ?run= reopens that run's monitor in a new session
    page.goto(server + "/monitor?run=1")
    page.get_by_text("demo (tiny)").first.wait_for()
    page.get_by_text("Losses and accuracies").wait_for()
    _no_exceptions(page)
    page.goto(server)
    page.get_by_role("button", name="Run the demo").wait_for()
    for label, name, marker in (("Launch", "04_launch", "Estimate run time"),
                                ("Runs", "05_runs", "Downloads"),
                                ("Monitor", "06_monitor", "Losses and accuracies")):
        _nav(page, label)
        page.get_by_text(marker).first.wait_for()
        _no_exceptions(page)
        _shot(page, name)


def test_launch_rejects_bad_input_in_the_browser(server, page):
    page.goto(server)
    page.get_by_role("button", name="Run the demo").wait_for()
    _nav(page, "Launch")
    page.locator('[data-testid="stExpander"] summary', has_text="Supernet").click()
    field = page.get_by_label("layers", exact=True)
    field.fill("2")
    field.press("Enter")
    page.get_by_text("layers: must be between 3 and 20, got 2").first.wait_for()
    page.get_by_role("button", name="Start search").click()
    page.get_by_text("Nothing started").wait_for()
    _no_exceptions(page)
    _shot(page, "07_launch_error")
