"""Iterations/s of the demo search run from the CLI versus the same search launched from the
browser and watched live on the Monitor page (issue 3: the app must keep >= 90%).

    python scripts/perf/app_vs_cli.py [--preset demo] [--method darts-prime] [--settle 3] [--pairs 3]

With --concurrent both searches run at once, under the same load. Both rates come from the
run's own stored step times (iterations after the first, divided by the time they took), so
process start-up is excluded from both in the same way. With --bracket one more CLI run closes
the sequence, and each app run is also compared with the mean of the CLI runs just before and
just after it (``ratio_bracketed``): a machine whose speed drifts steadily over minutes then
favours neither side.

With --alternate S no CLI search runs: the app's run is watched for S seconds and not watched
for S seconds in turn (the browser's processes stopped with SIGSTOP, then continued), and its
own step times give the seconds per iteration in each state. Both states share the same
minutes of the same search, so drift cancels. It also reports the search process's share of a
core in each state (0.99-1.00 not watched in the runs so far, as for a search alone).

With --pool LOG... nothing runs: the pairs saved from earlier batches (this script's output)
are pooled, and each ratio's mean, spread and 95% interval printed beside the CLI's own
run-to-run spread (each CLI run against the one before it in its batch). A batch of pairs ends
with the same line for its own runs. On a machine whose pace moves by 10% over minutes, one
pair says little; the pooled mean, with that spread beside it, says how close the app comes.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.runs.store import RunStore  # noqa: E402
from scripts.serve import CHARTS_JS, CHROMIUM_ARGS, app_server  # noqa: E402

CELLS_JS = """() => document.querySelectorAll('[data-testid="stGraphVizChart"] svg').length"""


class ChartProgress:
    """How far each chart has come, from CHARTS_JS readings: its points for an SVG chart; for a
    canvas chart (the weight grid), 0 before it is drawn, 1 once drawn, 2 once it has changed
    since (the grid changes at architecture steps)."""

    def __init__(self) -> None:
        self.first: dict[int, int] = {}

    def counts(self, charts: list[dict]) -> list[int]:
        out = []
        for i, c in enumerate(charts):
            if c["canvas"] is None:
                out.append(c["points"] or 0)
            elif not c["ink"]:
                out.append(0)
            else:
                out.append(1 if c["canvas"] == self.first.setdefault(i, c["canvas"]) else 2)
        return out


# The monitor's charts for darts-prime, all Vega-Lite, in page order: the op-weight grid,
# schedule, penalty, gap, size, loss, accuracy; and the panel (issue 3's five) each belongs to.
LINE_CHARTS = 7
TALL = 6000  # px: a window that holds the whole monitor, so every chart is drawn
PANELS = {"weights": [0], "schedule": [1], "regularizers": [2, 3], "cell": [4], "losses": [5, 6]}


def moving(counts: dict) -> bool:
    """Every panel moving: each chart has a point, each panel a chart with at least two, and
    both cells are drawn. The weight grid moves at the first architecture step (iteration 2 of
    the demo's seed); the penalty chart gets its second point only at the second (iteration 8),
    while the gap next to it gains one at every iteration."""
    lines = counts["lines"]
    return (counts["svgs"] >= 2 and len(lines) >= LINE_CHARTS and min(lines) >= 1
            and all(max(lines[i] for i in idx) >= 2 for idx in PANELS.values()))


def every_chart(counts: dict) -> bool:
    """Every chart with at least two points, and both cells drawn."""
    return counts["svgs"] >= 2 and sum(1 for c in counts["lines"] if c >= 2) >= LINE_CHARTS


def rate(store: RunStore, run_id: int) -> float:
    df = store.steps(run_id, columns=["step", "time"])
    return (len(df) - 1) / float(df["time"].iloc[-1] - df["time"].iloc[0])


def cli_run(tmp: Path, args) -> subprocess.Popen:
    db = tmp / "cli.sqlite"
    return subprocess.Popen([sys.executable, "-m", "core", "--db", str(db), "search", "--preset",
                             args.preset, "--method", args.method, "--quiet"], cwd=ROOT,
                            stdout=subprocess.DEVNULL)


def cli_rate(tmp: Path) -> float:
    store = RunStore(tmp / "cli.sqlite")
    return rate(store, store.list_runs()[0].id)


@contextmanager
def demo_clicked(tmp: Path, args) -> Iterator[tuple[Any, Path]]:
    """The app on a fresh store in ``tmp``, Chromium on Home, "Run the demo" clicked ``args.settle``
    seconds after the button showed: (the page, now the Monitor; the store's path)."""
    app_db = tmp / "app.sqlite"
    with app_server({"PRIME_EXPLORER_DB": str(app_db), "PRIME_EXPLORER_DEMO_PRESET": args.preset}) as url:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            # Tall by default: Streamlit draws a chart only once it is scrolled into view.
            page = browser.new_page(viewport={"width": 1400, "height": args.height})
            page.goto(url + "/")
            button = page.get_by_role("button", name="Run the demo")
            button.wait_for(timeout=60000)
            time.sleep(args.settle)
            button.click(timeout=60000)
            try:
                yield page, app_db
            finally:
                browser.close()


def app_run(tmp: Path, args) -> tuple[float | None, float | None, float, str]:
    """Clicks "Run the demo" and watches the Monitor until the run ends: (seconds until all
    five panels move, seconds until every chart has two points, the run's iterations/s, its
    status)."""
    with demo_clicked(tmp, args) as (page, app_db):
        clicked = time.time()
        moving_at = all_at = None
        progress = ChartProgress()
        # In a window shorter than the page the lower charts are never drawn: no times then.
        while args.height >= TALL and time.time() - clicked < 120 and all_at is None:
            counts = {"lines": progress.counts(page.evaluate(CHARTS_JS)), "svgs": page.evaluate(CELLS_JS)}
            now = time.time() - clicked
            if moving_at is None and moving(counts):
                moving_at = now
            if every_chart(counts):
                all_at = now
            page.wait_for_timeout(250)
        store = RunStore(app_db)
        deadline = time.time() + 1800
        while time.time() < deadline:
            runs = store.list_runs()
            if runs and runs[0].status in ("finished", "failed", "stopped"):
                break
            time.sleep(2)
    run = store.list_runs()[0]
    return moving_at, all_at, rate(store, run.id), run.status


def _proc_stat(pid: int | str) -> tuple[str, list[str]] | None:
    """A process's name and the fields of /proc/PID/stat after it; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            head, tail = f.read().rsplit(")", 1)
    except OSError:
        return None
    return head.split("(", 1)[1], tail.split()


def descendants() -> dict[int, str]:
    """This process's descendants (children, theirs, ...), pid to name: what a measurement
    here started, and not another browser or server on the machine."""
    parents, names = {}, {}
    for d in filter(str.isdigit, os.listdir("/proc")):
        if (stat := _proc_stat(d)) is not None:
            names[int(d)], parents[int(d)] = stat[0], int(stat[1][1])
    mine, grew = {os.getpid()}, True
    while grew:
        new = {p for p, pp in parents.items() if pp in mine and p not in mine}
        mine |= new
        grew = bool(new)
    mine.discard(os.getpid())
    return {p: names.get(p, "") for p in mine}


def _browser_pids() -> list[int]:
    """This process's Chromium descendants (Playwright starts them under its driver)."""
    return sorted(p for p, name in descendants().items() if "chrom" in name)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process so far (0 once it is gone)."""
    stat = _proc_stat(pid)
    return 0.0 if stat is None else (int(stat[1][11]) + int(stat[1][12])) / os.sysconf("SC_CLK_TCK")


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def watch_cost(store: RunStore, run_id: int, switches: list[tuple[float, bool]]) -> dict:
    """Seconds per iteration watched and not, from the run's step times and the (wall time,
    watched) switches. An iteration counts for a state when it began and ended inside one of
    its windows. Architecture steps and the first iteration after an epoch end (it carries the
    validation pass) take longer: the mean is taken per kind and weighted by the run's own mix
    of kinds, the same weights for both states."""
    run = store.get_run(run_id)
    df = store.steps(run_id, columns=["step", "time", "arch_step"])
    epoch_ends = set(store.events(run_id, kinds=["epoch_end"])["step"].astype(int))
    end = run.started + df["time"].to_numpy()
    edges = [t for t, _ in switches] + [float("inf")]
    samples: dict[tuple, dict[bool, list[float]]] = {}
    for i in range(1, len(df)):
        a, b = end[i - 1], end[i]
        w = next((k for k in range(len(switches)) if edges[k] <= a and b < edges[k + 1]), None)
        if w is None:
            continue
        kind = (bool(df["arch_step"].iloc[i]), int(df["step"].iloc[i - 1]) in epoch_ends)
        samples.setdefault(kind, {True: [], False: []})[switches[w][1]].append(b - a)
    both = {k: v for k, v in samples.items() if v[True] and v[False]}
    weight = {k: len(v[True]) + len(v[False]) for k, v in both.items()}
    total = sum(weight.values()) or 1
    per = {s: sum(weight[k] / total * statistics.fmean(v[s]) for k, v in both.items()) for s in (True, False)}
    return {"iterations_watched": sum(len(v[True]) for v in samples.values()),
            "iterations_not_watched": sum(len(v[False]) for v in samples.values()),
            "s_per_iter_watched": round(per[True], 4), "s_per_iter_not_watched": round(per[False], 4),
            "ratio_watched": round(per[False] / per[True], 3) if per[True] else None}


def alternate_run(tmp: Path, args) -> dict:
    """The demo launched from the browser; 15 s after the click (its panels are moving by
    then), the browser is stopped and continued every ``args.alternate`` seconds until the run
    ends."""
    with demo_clicked(tmp, args) as (page, app_db):
        page.wait_for_timeout(15000)
        store = RunStore(app_db)
        pids = _browser_pids()
        switches: list[tuple[float, bool]] = []
        worker = store.list_runs()[0].pid
        cpu = {True: 0.0, False: 0.0}
        wall = {True: 0.0, False: 0.0}
        watched = True
        try:
            while store.list_runs()[0].status not in ("finished", "failed", "stopped"):
                switches.append((time.time(), watched))
                c0 = cpu_seconds(worker)
                time.sleep(args.alternate)
                if store.list_runs()[0].status == "running":  # a whole window of search
                    cpu[watched] += cpu_seconds(worker) - c0
                    wall[watched] += time.time() - switches[-1][0]
                watched = not watched
                _signal_all(pids, signal.SIGCONT if watched else signal.SIGSTOP)
        finally:
            _signal_all(pids, signal.SIGCONT)
    run = store.list_runs()[0]
    out = {"height": args.height, "window_s": args.alternate, "browser_processes": len(pids),
           "app_status": run.status, **watch_cost(store, run.id, switches)}
    # The search's share of a core in each state, and so its CPU seconds per iteration: a
    # watched search can lose time by getting less CPU or by needing more for the same work.
    for state, name in ((True, "watched"), (False, "not_watched")):
        share = cpu[state] / wall[state] if wall[state] else None
        out[f"cpu_share_{name}"] = share and round(share, 3)
        per_iter = out[f"s_per_iter_{name}"]
        out[f"cpu_s_per_iter_{name}"] = share and round(share * per_iter, 4)
    return out


def bracketed(app: float, cli_before: float, cli_after: float) -> float:
    """An app run's rate over the mean of the CLI runs just before and just after it: a machine
    whose pace drifts steadily then favours neither side."""
    return app / ((cli_before + cli_after) / 2)


def cli_sequences(lines: Iterable[str]) -> list[list[dict[str, float]]]:
    """The runs of earlier batches of this script, from its JSON output lines, in the order they
    ran: per batch, each pair's ``{"cli": rate, "app": rate}`` and, after a --bracket batch's last
    pair, its closing ``{"cli": rate}``. A batch ends at its closing CLI run or at its summary
    line; other lines (the per-pair recap, text) are skipped."""
    batches: list[list[dict[str, float]]] = [[]]
    for line in lines:
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if not isinstance(d, dict):
            continue
        if "cli_iters_per_s" in d and "app_iters_per_s" in d:
            batches[-1].append({"cli": d["cli_iters_per_s"], "app": d["app_iters_per_s"]})
        elif "closing_cli_iters_per_s" in d:
            batches[-1].append({"cli": d["closing_cli_iters_per_s"]})
            batches.append([])
        elif "pairs" in d and batches[-1]:
            batches.append([])
    return [b for b in batches if b]


def spread(values: list[float], threshold: float = 0.9) -> dict[str, Any]:
    """Mean, standard deviation, range, how many fall under ``threshold``, and a 95% interval of
    the mean (percentiles of 20,000 bootstrap means, seeded: the same runs give the same
    interval)."""
    v = np.asarray(values, dtype=np.float64)
    out: dict[str, Any] = {"n": len(v), "mean": round(float(v.mean()), 3), "min": round(float(v.min()), 3),
                           "max": round(float(v.max()), 3), f"under_{threshold:g}": int((v < threshold).sum())}
    if len(v) > 1:
        means = np.random.default_rng(0).choice(v, size=(20000, len(v))).mean(axis=1)
        out["sd"] = round(float(v.std(ddof=1)), 3)
        out["mean_95"] = [round(float(x), 3) for x in np.percentile(means, [2.5, 97.5])]
    return out


def pooled(batches: list[list[dict[str, float]]]) -> dict[str, Any]:
    """Pairs of several batches together: each app run against the CLI run before it
    (``app_vs_cli``), against the mean of the CLI runs before and after it where one followed in
    its batch (``app_vs_bracketing_cli``), and each CLI run against the CLI run before it
    (``cli_vs_previous_cli``): how far the same search from the CLI moves between two of its
    own runs on this machine, the noise any single pair carries."""
    app_cli, around, cli_cli = [], [], []
    for runs in batches:
        for i, r in enumerate(runs):
            if i:
                cli_cli.append(r["cli"] / runs[i - 1]["cli"])
            if "app" in r:
                app_cli.append(r["app"] / r["cli"])
                if i + 1 < len(runs):
                    around.append(bracketed(r["app"], r["cli"], runs[i + 1]["cli"]))
    out: dict[str, Any] = {"pairs": len(app_cli)}
    for name, values in (("app_vs_cli", app_cli), ("app_vs_bracketing_cli", around),
                         ("cli_vs_previous_cli", cli_cli)):
        if values:
            out[name] = spread(values)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--method", default="darts-prime")
    ap.add_argument("--concurrent", action="store_true",
                    help="run the CLI search at the same time as the app's, so both see the same "
                         "machine load (for a busy machine); default: one after the other")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="seconds between the Home page showing its button and the click (a "
                         "person reading the page; the app's spare search process starts with "
                         "the first page load); default 0: click at once")
    ap.add_argument("--pairs", type=int, default=1,
                    help="CLI then app, this many times in turn; prints each pair and the medians "
                         "(a noisy machine drifts over minutes: pairs next to each other compare)")
    ap.add_argument("--height", type=int, default=TALL,
                    help=f"browser window height in px (default {TALL}: the whole monitor in "
                         "view); a shorter window, e.g. 900, measures the rates only")
    ap.add_argument("--bracket", action="store_true",
                    help="end with one more CLI run and also compare each app run with the mean "
                         "of the CLI runs before and after it (cancels steady drift)")
    ap.add_argument("--alternate", type=float, default=0.0, metavar="S",
                    help="no CLI run: the app's run watched and not watched (browser stopped) "
                         "for S seconds in turn; reports seconds per iteration and CPU share in each")
    ap.add_argument("--pool", nargs="+", type=Path, metavar="LOG",
                    help="run nothing: pool the pairs in these saved outputs of earlier batches "
                         "and print each ratio's mean, spread and 95%% interval, with the CLI's "
                         "own run-to-run spread beside them")
    args = ap.parse_args()
    if args.pool:
        missing = [str(f) for f in args.pool if not f.is_file()]
        if missing:
            ap.error(f"--pool: no such file: {', '.join(missing)}")
        batches = [b for f in args.pool for b in cli_sequences(f.read_text().splitlines())]
        if not batches:
            ap.error("--pool: no pairs in these files (lines this script prints with --pairs)")
        print(json.dumps(pooled(batches)))
        return
    if args.alternate:
        for _ in range(max(1, args.pairs)):
            print(json.dumps(alternate_run(Path(tempfile.mkdtemp()), args)), flush=True)
        return
    if args.bracket and args.concurrent:
        ap.error("--bracket: the CLI runs must come between the app runs; drop --concurrent")
    results = []
    for _ in range(max(1, args.pairs)):
        tmp = Path(tempfile.mkdtemp())
        cli = cli_run(tmp, args)
        if not args.concurrent:
            cli.wait()
        moving_at, all_at, app_rate, status = app_run(tmp, args)
        cli.wait()
        r = {"settle": args.settle, "height": args.height,
             "seconds_to_panels_moving": moving_at and round(moving_at, 1),
             "seconds_to_every_chart": all_at and round(all_at, 1),
             "cli_iters_per_s": round(cli_rate(tmp), 4), "app_iters_per_s": round(app_rate, 4),
             "app_status": status}
        r["ratio"] = round(r["app_iters_per_s"] / r["cli_iters_per_s"], 3)
        results.append(r)
        print(json.dumps(r), flush=True)
    if args.bracket:
        tmp = Path(tempfile.mkdtemp())
        cli_run(tmp, args).wait()
        cli_rates = [r["cli_iters_per_s"] for r in results] + [round(cli_rate(tmp), 4)]
        print(json.dumps({"closing_cli_iters_per_s": cli_rates[-1]}), flush=True)
        for i, r in enumerate(results):
            r["ratio_bracketed"] = round(bracketed(r["app_iters_per_s"], cli_rates[i], cli_rates[i + 1]), 3)
            print(json.dumps({"pair": i + 1, "ratio": r["ratio"], "ratio_bracketed": r["ratio_bracketed"]}),
                  flush=True)
    if len(results) > 1:
        keys = ("ratio", "ratio_bracketed", "seconds_to_panels_moving", "seconds_to_every_chart",
                "cli_iters_per_s", "app_iters_per_s")
        med = {k: statistics.median(v) for k in keys
               if (v := [r[k] for r in results if r.get(k) is not None])}
        print(json.dumps({"pairs": len(results), **{f"median_{k}": round(v, 3) for k, v in med.items()}}))
        runs = [{"cli": r["cli_iters_per_s"], "app": r["app_iters_per_s"]} for r in results]
        if args.bracket:
            runs.append({"cli": cli_rates[-1]})
        print(json.dumps(pooled([runs])))


if __name__ == "__main__":
    main()
