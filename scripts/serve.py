"""Starting the app on a free loopback port for the measurement scripts, and what they and the
browser tests read of the monitor's charts."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

# What each Vega-Lite chart on the page has drawn, in page order: an SVG chart (the monitor's
# line charts) reports its points (the vertices of every line path plus every symbol); a canvas
# chart (the weight grid) reports a fingerprint of its pixels drawn at 96x96, which changes
# when the chart does, and how many of those pixels are inked (painted and not white).
CHARTS_JS = """() => Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]')).map(c => {
  const cv = c.querySelector('canvas.marks');
  if (cv) {
    if (!cv.width || !cv.height) return {points: null, canvas: null, ink: 0};
    const s = document.createElement('canvas'); s.width = 96; s.height = 96;
    const x = s.getContext('2d'); x.drawImage(cv, 0, 0, 96, 96);
    const d = x.getImageData(0, 0, 96, 96).data;
    let h = 0, ink = 0;
    for (let i = 0; i < d.length; i += 4) {
      h = (Math.imul(h, 31) + d[i] + 7 * d[i + 1] + 13 * d[i + 2] + 17 * d[i + 3]) | 0;
      if (d[i + 3] > 0 && d[i] + d[i + 1] + d[i + 2] < 600) ink++;
    }
    return {points: null, canvas: h, ink: ink};
  }
  const points = Array.from(c.querySelectorAll('g.mark-line path')).reduce(
      (s, p) => s + ((p.getAttribute('d') || '').match(/[MLHV]/g) || []).length, 0)
    + c.querySelectorAll('g.mark-symbol path').length;
  return {points: points, canvas: null, ink: 0};
})"""


@contextmanager
def app_server(env: dict[str, str]) -> Iterator[str]:
    """Runs `streamlit run app.py` with ``env`` added; yields its base URL once healthy."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.port", str(port), "--server.address", "127.0.0.1",
                               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                              cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(60)
