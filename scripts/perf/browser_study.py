"""Launches a study from the Compare page in headless Chromium and waits for it to finish.

    python scripts/perf/browser_study.py --methods darts,fairdarts,darts-prime,prime-crb,prime-admm \
        --seeds 3 --preset demo --name demo-5x3 --evaluate [--db runs/explorer.sqlite]

Prints the study summary (the same numbers the page shows) and the wall time; screenshots
the Compare page at the end into screenshots/study_<name>.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.runs.store import EVAL_ACTIVE_STATUSES, RunStore, default_db_path  # noqa: E402
from core.viz.compare import study_summary  # noqa: E402
from scripts.serve import CHROMIUM_ARGS, app_server  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="darts,darts-prime,prime-crb,prime-admm")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--name", default="demo-4x3")
    ap.add_argument("--evaluate", action="store_true")
    ap.add_argument("--db", default=default_db_path())
    ap.add_argument("--timeout", type=float, default=3 * 3600)
    args = ap.parse_args()
    methods = args.methods.split(",")

    with app_server({"PRIME_EXPLORER_DB": str(Path(args.db).resolve())}) as url:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url + "/compare")
            page.get_by_text("New study").first.wait_for(timeout=60000)
            page.wait_for_timeout(2000)
            ms = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Method presets")
            if not ms.is_visible():  # the form starts collapsed once studies exist
                page.get_by_text("New study").first.click()
            ms.wait_for(timeout=60000)
            for m in methods:
                if ms.get_by_text(m, exact=True).count() == 0:
                    ms.locator("input").click()
                    ms.locator("input").fill(m)
                    page.keyboard.press("Enter")
                    page.wait_for_timeout(500)
            page.keyboard.press("Escape")
            if args.preset != "demo":  # the form's default data preset
                page.locator('[data-testid="stSelectbox"]').filter(has_text="Data preset").click()
                page.keyboard.type(args.preset)
                page.keyboard.press("Enter")
                page.wait_for_timeout(800)
            seeds = page.get_by_label("Seeds")
            seeds.fill(str(args.seeds))
            seeds.press("Enter")
            page.wait_for_timeout(800)
            if args.evaluate:
                page.get_by_text("Evaluate when done").click()
                page.wait_for_timeout(800)
            name = page.get_by_label("Study name")
            name.fill(args.name)
            name.press("Enter")
            page.wait_for_timeout(800)
            page.get_by_role("button", name="Start study").click()
            store = RunStore(args.db)
            launched = time.time()
            while time.time() - launched < args.timeout:
                runs = store.list_runs(group=args.name)
                if runs:
                    done = all(r.status in ("finished", "failed", "stopped") for r in runs)
                    evals = store.evaluations([r.id for r in runs])
                    ev_done = (~evals["status"].isin(EVAL_ACTIVE_STATUSES)).sum() if len(evals) else 0
                    need = sum(r.status == "finished" for r in runs) if args.evaluate else 0
                    print(f"{time.time() - launched:6.0f}s runs {sum(r.status == 'finished' for r in runs)}"
                          f"/{len(runs)} evaluations {ev_done}/{need}", file=sys.stderr, flush=True)
                    if done and ev_done >= need:
                        break
                time.sleep(20)
            wall = time.time() - launched
            page.wait_for_timeout(6000)
            page.set_viewport_size({"width": 1400, "height": 5200})
            page.wait_for_timeout(4000)
            out = ROOT / "screenshots"
            out.mkdir(exist_ok=True)
            page.screenshot(path=str(out / f"study_{args.name}.png"), full_page=True)
            browser.close()
    ids = [r.id for r in store.list_runs(group=args.name)]
    summary = study_summary(store, ids)
    print(json.dumps({"study": args.name, "wall_seconds": round(wall), "summary": summary}, default=str))


if __name__ == "__main__":
    main()
