"""What watching the Monitor costs the browser and the app server, measured on a replayed run
(and, with --beside-search, what it costs a search on the same cores).

    python scripts/perf/monitor_cost.py [--db STORE --run ID] [--pace 1.2] [--samples 2] [--seconds 20]
                                   [--beside-search]

A finished run is replayed into a fresh store, one iteration's rows (steps, alphas, genotypes,
events) every ``--pace`` seconds, as a search writing at that pace would; the store says the
run is running, so the Monitor refreshes as for a live run. Chromium watches it in a 1400x900
window, and the CPU of each Chromium process kind and of the server is sampled. Unless
--beside-search asks for one, no search runs, so the machine is otherwise quiet and two
versions of the page can be told apart by a few hundredths of a core, where `app_vs_cli.py`
sees them through the search's own noise.

Without --db the demo search is first run from the CLI into a temporary store (about 1.5 min
on a 2-core machine). Past the replayed run's end the replay goes on with its rows again under
new iteration numbers, so any --seconds can be sampled; but the charts' iteration axis spans
the source run's planned length, so the new rows fall past its end. Keep the page's load
(about 10 s), --warmup and the samples within the source's iterations times --pace (96 s for
the 80-iteration demo at 1.2 s) to measure the page as a real run shows it; the script says
when the replay went past.

``--beside-search`` also runs the demo search's iterations beside the page (``core bench``, one
torch thread, in a session of its own as the app's worker), and reports for each sample the
share of the time it ran (``search_cpu``) and waited for a core (``search_wait``), and how often
it was pushed off one (``search_preempted_per_s``), from Linux's per-thread scheduler counters.
Whatever the page costs a search on the same cores shows up there, as its wait (six 30 s
samples of one page spread over about 0.015 of the time on the 2-core machine).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.runs.store import RunStore  # noqa: E402
from scripts.perf.app_vs_cli import cpu_seconds, descendants  # noqa: E402
from scripts.serve import CHROMIUM_ARGS, app_server  # noqa: E402

ROW_TABLES = ("steps", "alphas", "genotypes", "events")


class Replay:
    """A stored run written again, iteration by iteration, into another store as a new run
    that the store calls running (its writer: this process)."""

    def __init__(self, src: Path, run_id: int, dst: Path) -> None:
        RunStore(dst)  # the schema, as the app will expect it
        self.dst = Path(dst)
        with sqlite3.connect(src) as con:
            cols = [r[1] for r in con.execute("PRAGMA table_info(runs)")]
            found = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if found is None:
                raise SystemExit(f"--run: no run {run_id} in {src}")
            run = dict(zip(cols, found))
            self.rows = {}
            for t in ROW_TABLES:
                names = [r[1] for r in con.execute(f"PRAGMA table_info({t})") if r[1] not in ("id", "run_id")]
                self.rows[t] = (names, con.execute(f"SELECT {', '.join(names)} FROM {t} WHERE run_id = ? "
                                                   "ORDER BY step", (run_id,)).fetchall())
        self.last = max((r[0] for r in self.rows["steps"][1]), default=-1)
        if self.last < 0:
            raise SystemExit(f"--run: run {run_id} has no iterations to replay")
        now = time.time()
        run.update(id=None, status="running", iterations=0, created=now, started=now, updated=now,
                   finished=None, genotype=None, size=None, summary=None, error=None,
                   host=socket.gethostname(), pid=os.getpid())
        with sqlite3.connect(self.dst) as con:
            cur = con.execute(f"INSERT INTO runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})",
                              list(run.values()))
            self.run_id = int(cur.lastrowid)
        self.done = 0

    def write_next(self, con: sqlite3.Connection) -> None:
        """One more iteration's rows; past the source's end, its rows again under new steps."""
        s = self.done
        lap, src_step = divmod(s, self.last + 1)
        for t, (names, rows) in self.rows.items():
            if lap and t == "events":
                continue  # a second "started" or "finished" would change what the page shows
            sel = [(self.run_id, s, *r[1:]) for r in rows
                   if r[0] == src_step or (r[0] is None and s == 0)]  # events without a step first
            if sel:
                con.executemany(f"INSERT OR REPLACE INTO {t} (run_id, {', '.join(names)}) "
                                f"VALUES ({', '.join('?' * (len(names) + 1))})", sel)
        con.execute("UPDATE runs SET iterations = ?, updated = ? WHERE id = ?", (s + 1, time.time(), self.run_id))
        con.commit()
        self.done += 1

    def run(self, pace: float, stop: threading.Event) -> None:
        with sqlite3.connect(self.dst, timeout=30) as con:
            while not stop.is_set():
                self.write_next(con)
                stop.wait(pace)


def cpu_by_kind() -> collections.Counter:
    """CPU seconds so far of each Chromium process kind (--type) and of the Streamlit server,
    among the processes this script started."""
    out: collections.Counter = collections.Counter()
    for pid in descendants():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        seconds = cpu_seconds(pid)
        if "chromium" in cmd:
            kind = next((a.split("=", 1)[1] for a in cmd.split() if a.startswith("--type=")), "browser")
            out[f"chromium {kind}"] += seconds
        elif "streamlit run" in cmd:
            out["server"] += seconds
    return out


def sched_times(pid: int) -> tuple[float, float, int]:
    """A process's seconds on a core and seconds runnable but waiting for one, summed over its
    live threads (Linux's /proc/PID/task/TID/schedstat; a search computes in threads that last),
    and how many times they were preempted."""
    ran = waited = preempted = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run_ns, wait_ns = f.read().split()[:2]
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                preempted += next(int(line.split()[1]) for line in f if line.startswith("nonvoluntary_ctxt_switches"))
        except (OSError, StopIteration):
            continue  # a thread that ended between the listing and the read
        ran, waited = ran + int(run_ns), waited + int(wait_ns)
    return ran / 1e9, waited / 1e9, preempted


def search_beside() -> subprocess.Popen:
    """The demo search's iterations, as the app's worker runs them, until killed."""
    return subprocess.Popen([sys.executable, "-m", "core", "bench", "--preset", "demo", "--method", "darts-prime",
                             "--iters", "1000000", "--warmup", "1", "--threads", "1"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, start_new_session=True)


def demo_store(tmp: Path) -> tuple[Path, int]:
    db = tmp / "source.sqlite"
    subprocess.run([sys.executable, "-m", "core", "--db", str(db), "search", "--preset", "demo",
                    "--method", "darts-prime", "--quiet"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return db, RunStore(db).list_runs()[0].id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, help="store holding the run to replay (default: run the demo first)")
    ap.add_argument("--run", type=int, help="run id in --db (default: its newest run)")
    ap.add_argument("--pace", type=float, default=1.2, help="seconds between iterations (default 1.2, "
                    "the demo's pace on a 2-core machine)")
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each sample")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds watched before sampling")
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--beside-search", action="store_true",
                    help="run the demo search's iterations beside the page and report how long it waited for a core")
    args = ap.parse_args()
    if args.pace <= 0 or args.samples < 1 or args.seconds <= 0:
        ap.error("--pace and --seconds must be > 0 and --samples >= 1")
    if args.beside_search and not os.path.exists(f"/proc/{os.getpid()}/schedstat"):
        ap.error("--beside-search reads Linux's scheduler counters (/proc/PID/schedstat), not found here")
    tmp = Path(tempfile.mkdtemp(prefix="monitor_cost_"))
    src, run_id = (args.db, args.run) if args.db else demo_store(tmp)
    if run_id is None:
        run_id = RunStore(src).list_runs()[0].id
    replay = Replay(src, run_id, tmp / "app.sqlite")
    stop = threading.Event()
    search = None
    # No spare search process: nothing but the page, the server and the replay runs.
    with app_server({"PRIME_EXPLORER_DB": str(replay.dst), "PRIME_EXPLORER_SPARE": "0"}) as url:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": args.height})
            writer = threading.Thread(target=replay.run, args=(args.pace, stop), daemon=True)
            writer.start()
            try:
                search = search_beside() if args.beside_search else None
                page.goto(f"{url}/monitor?run={replay.run_id}")
                page.get_by_text("Live ·").first.wait_for(timeout=60000)
                time.sleep(args.warmup)
                for _ in range(args.samples):
                    a, s0, t0 = cpu_by_kind(), search and sched_times(search.pid), time.time()
                    time.sleep(args.seconds)
                    z, s1, dt = cpu_by_kind(), search and sched_times(search.pid), time.time() - t0
                    cores = {k: round((z[k] - a[k]) / dt, 3) for k in sorted(z)}
                    cores["chromium"] = round(sum(v for k, v in cores.items() if k.startswith("chromium ")), 3)
                    if search is not None:
                        cores.update(search_cpu=round((s1[0] - s0[0]) / dt, 3),
                                     search_wait=round((s1[1] - s0[1]) / dt, 4),
                                     search_preempted_per_s=round((s1[2] - s0[2]) / dt, 1))
                    print(json.dumps(cores), flush=True)
            finally:
                stop.set()
                browser.close()
                if search is not None:
                    os.killpg(search.pid, signal.SIGKILL)
                    search.wait()
    if replay.done > replay.last + 1:
        print(f"note: the replay went past the source run's {replay.last + 1} iterations; the rows after "
              "those fall beyond the charts' iteration axis, so the last sample is not the page a real "
              "run shows", file=sys.stderr)


if __name__ == "__main__":
    main()
