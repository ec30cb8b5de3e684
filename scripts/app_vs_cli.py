"""Iterations/s of the demo search run from the CLI versus the same search launched from the
browser and watched live on the Monitor page (issue 3: the app must keep >= 90%).

    python scripts/app_vs_cli.py [--preset demo] [--method darts-prime]

Both rates come from the run's own stored step times (iterations after the first, divided by
the time they took), so process start-up is excluded from both in the same way.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.store import RunStore  # noqa: E402


def rate(store: RunStore, run_id: int) -> float:
    df = store.steps(run_id, columns=["step", "time"])
    return (len(df) - 1) / float(df["time"].iloc[-1] - df["time"].iloc[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--method", default="darts-prime")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())

    cli_db = tmp / "cli.sqlite"
    subprocess.run([sys.executable, "-m", "core", "--db", str(cli_db), "search", "--preset", args.preset,
                    "--method", args.method, "--quiet"], cwd=ROOT, check=True)
    cli_store = RunStore(cli_db)
    cli_rate = rate(cli_store, cli_store.list_runs()[0].id)

    app_db = tmp / "app.sqlite"
    port = free_port()
    env = {**os.environ, "PRIME_EXPLORER_DB": str(app_db), "PRIME_EXPLORER_DEMO_PRESET": args.preset}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.port", str(port), "--server.address", "127.0.0.1",
                               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("button", name="Run the demo").click(timeout=60000)
            store = RunStore(app_db)
            deadline = time.time() + 1800
            while time.time() < deadline:
                runs = store.list_runs()
                if runs and runs[0].status in ("finished", "failed", "stopped"):
                    break
                time.sleep(2)
            browser.close()
        run = store.list_runs()[0]
        app_rate = rate(store, run.id)
    finally:
        server.terminate()
        server.wait(30)
    print(json.dumps({"cli_iters_per_s": round(cli_rate, 4), "app_iters_per_s": round(app_rate, 4),
                      "ratio": round(app_rate / cli_rate, 3), "app_status": run.status}))


if __name__ == "__main__":
    main()
