"""The SQLite run store: the single meeting point of runs, the CLI and the app.

Tables (docs/design.md "Store"): runs, steps, alphas, genotypes, events. WAL mode so readers see a
run's rows while it writes; one connection per thread; short transactions. The schema version is
SQLite's ``user_version``; ``_MIGRATIONS[i]`` brings version i to i+1.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

DEFAULT_DB = os.path.join("runs", "explorer.sqlite")

STEP_COLUMNS: tuple[str, ...] = (
    "step", "epoch", "progress", "time", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
    "fi", "fi_ewma", "threshold", "arch_step", "penalty", "gap", "active_ops", "terms",
)

_MIGRATIONS: list[str] = [
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        grp TEXT,
        method TEXT,
        dataset TEXT,
        config TEXT NOT NULL,
        status TEXT NOT NULL,
        created REAL NOT NULL,
        started REAL,
        finished REAL,
        updated REAL,
        device TEXT,
        host TEXT,
        pid INTEGER,
        error TEXT,
        genotype TEXT,
        size INTEGER,
        iterations INTEGER DEFAULT 0,
        total_iterations INTEGER,
        summary TEXT
    );
    CREATE TABLE steps (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL, epoch INTEGER, progress REAL, time REAL,
        train_loss REAL, train_acc REAL, val_loss REAL, val_acc REAL, lr REAL,
        fi REAL, fi_ewma REAL, threshold REAL, arch_step INTEGER, penalty REAL, gap REAL,
        active_ops INTEGER, terms TEXT,
        PRIMARY KEY (run_id, step)
    ) WITHOUT ROWID;
    CREATE TABLE alphas (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL, cell_type TEXT NOT NULL,
        edges INTEGER NOT NULL, ops INTEGER NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY (run_id, step, cell_type)
    ) WITHOUT ROWID;
    CREATE TABLE genotypes (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL, genotype TEXT NOT NULL, size INTEGER,
        PRIMARY KEY (run_id, step)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER, time REAL NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL, data TEXT
    );
    CREATE INDEX events_run ON events(run_id, id);
    CREATE INDEX runs_grp ON runs(grp);
    """,
    """
    CREATE TABLE evaluations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        config TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL, finished REAL,
        test_acc REAL, params INTEGER, seconds REAL, result TEXT, error TEXT
    );
    CREATE INDEX evaluations_run ON evaluations(run_id);
    CREATE TABLE studies (
        name TEXT PRIMARY KEY, spec TEXT NOT NULL, created REAL NOT NULL
    );
    """,
    # Evaluations run in worker processes (core.runs.worker, started by RunManager): the process that
    # holds one (the app's while it is queued, the worker's once handed to one), its host, its start.
    """
    ALTER TABLE evaluations ADD COLUMN pid INTEGER;
    ALTER TABLE evaluations ADD COLUMN host TEXT;
    ALTER TABLE evaluations ADD COLUMN started REAL;
    """,
    # Liveness (docs/design.md "Liveness"): the start time of the process named by ``pid`` (a
    # reused pid has another), and the last heartbeat of the process writing the run.
    """
    ALTER TABLE runs ADD COLUMN proc_start REAL;
    ALTER TABLE runs ADD COLUMN seen REAL;
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)

# Statuses a run can have; "interrupted" is derived when the writing process is gone.
ACTIVE_STATUSES = ("queued", "running", "paused")
FINAL_STATUSES = ("finished", "failed", "stopped", "interrupted")
# Every run that is not live and not finished can be resumed (from its last checkpoint).
RESUMABLE_STATUSES = ("interrupted", "stopped", "failed")
# A run on another host (where its pid cannot be checked) unseen for this long is taken as
# gone; its process stamps ``seen`` every few seconds (core.runs.recorder.HEARTBEAT_SECONDS).
STALE_SECONDS = 120.0
# Events a resumed run keeps after its checkpoint: the run's history, not rows it redoes.
LIFECYCLE_EVENTS = ("started", "stopped", "interrupted", "failed", "resumed", "paused", "retried",
                    "stop_requested", "pause_requested", "resume_requested")
MAX_NAME_CHARS = 200  # a run's name and group
# Statuses of an evaluation: queued -> running -> finished | failed | stopped | interrupted.
EVAL_ACTIVE_STATUSES = ("queued", "running")


def default_db_path() -> str:
    return os.environ.get("PRIME_EXPLORER_DB") or DEFAULT_DB


@dataclass
class RunRecord:
    id: int
    name: str
    group: str | None
    method: str | None
    dataset: str | None
    config: dict[str, Any]
    status: str
    created: float
    started: float | None = None
    finished: float | None = None
    updated: float | None = None
    device: str | None = None
    host: str | None = None
    pid: int | None = None
    error: str | None = None
    genotype: str | None = None
    size: int | None = None
    iterations: int = 0
    total_iterations: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    proc_start: float | None = None
    seen: float | None = None

    @property
    def last_seen(self) -> float | None:
        """When the process writing the run last showed a sign of life (heartbeat or rows)."""
        stamps = [t for t in (self.seen, self.updated) if t is not None]
        return max(stamps) if stamps else None

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        end = self.finished or self.updated or self.started
        return max(0.0, end - self.started)


class RunStore:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = str(path or default_db_path())
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._migrate()

    # ---- connections ---------------------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _write(self, sql: str, params: Sequence | Iterable[Sequence] = (), many: bool = False) -> sqlite3.Cursor:
        conn = self.connect()
        with conn:  # one short transaction
            conn.execute("BEGIN IMMEDIATE")
            return conn.executemany(sql, params) if many else conn.execute(sql, params)

    def _migrate(self) -> None:
        conn = self.connect()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} has schema version {version}, newer than this code "
                               f"({SCHEMA_VERSION}); upgrade PRIME Explorer")
        for v in range(version, SCHEMA_VERSION):
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                # another process opening the same new store may have migrated it meanwhile
                if conn.execute("PRAGMA user_version").fetchone()[0] > v:
                    continue
                for stmt in filter(str.strip, _MIGRATIONS[v].split(";")):
                    conn.execute(stmt)
                conn.execute(f"PRAGMA user_version = {v + 1}")

    # ---- runs ------------------------------------------------------------------------------
    def create_run(self, config: Any, name: str | None = None, group: str | None = None,
                   status: str = "queued") -> int:
        """Stores a run held by this process (its launcher: pid, host and the pid's start time)
        until a worker takes it; a reader finds it interrupted once that process is gone."""
        cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        check_name("name", name)
        check_name("group", group)
        now = time.time()
        cur = self._write(
            "INSERT INTO runs (name, grp, method, dataset, config, status, created, updated, host, pid, "
            "proc_start) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name or "", group, cfg.get("method"), cfg.get("dataset"), json.dumps(cfg), status, now, now,
             socket.gethostname(), os.getpid(), process_start(os.getpid())))
        run_id = int(cur.lastrowid)
        if not name:
            self._write("UPDATE runs SET name = ? WHERE id = ?",
                        (f"{cfg.get('method', 'run')}-s{cfg.get('seed', 0)}-{run_id}", run_id))
        return run_id

    _RUN_FIELDS = {"name", "grp", "status", "started", "finished", "updated", "device", "host", "pid",
                   "error", "genotype", "size", "iterations", "total_iterations", "summary", "config",
                   "proc_start", "seen"}

    def update_run(self, run_id: int, **values: Any) -> None:
        if "group" in values:
            values["grp"] = values.pop("group")
        bad = set(values) - self._RUN_FIELDS
        if bad:
            raise KeyError(f"unknown run fields {sorted(bad)}")
        check_name("name", values.get("name"))
        check_name("group", values.get("grp"))
        if values.get("pid") and "proc_start" not in values:
            # the start time can only be read on the pid's own host
            here = values.get("host", socket.gethostname()) == socket.gethostname()
            values["proc_start"] = process_start(int(values["pid"])) if here else None
        for k in ("summary", "config"):
            if k in values and not isinstance(values[k], str):
                values[k] = json.dumps(values[k])
        values.setdefault("updated", time.time())
        cols = ", ".join(f"{k} = ?" for k in values)
        self._write(f"UPDATE runs SET {cols} WHERE id = ?", (*values.values(), run_id))

    def merge_summary(self, run_id: int, **items: Any) -> None:
        run = self.get_run(run_id)
        if run is not None:
            self.update_run(run_id, summary={**run.summary, **items})

    def mark_started(self, run_id: int, device: str, elapsed: float = 0.0) -> None:
        """The calling process now writes the run; ``elapsed``: seconds it already ran before a
        resume (its recorded time goes on from there)."""
        now = time.time()
        self.update_run(run_id, status="running", started=now - elapsed, device=device,
                        host=socket.gethostname(), pid=os.getpid(), error=None, finished=None,
                        seen=now)

    def touch(self, run_id: int) -> None:
        """The heartbeat of the process writing the run (``last_seen``)."""
        self._write("UPDATE runs SET seen = ? WHERE id = ?", (time.time(), int(run_id)))

    def queue_run(self, run_id: int) -> None:
        """A resumed run waits, held by this process, until a worker takes it."""
        self.update_run(run_id, status="queued", error=None, finished=None,
                        host=socket.gethostname(), pid=os.getpid())

    def get_run(self, run_id: int, check: bool = True) -> RunRecord | None:
        """The run; ``check=False``: as stored, without the liveness check (the manager that
        watched its worker end settles it with what it saw)."""
        row = self.connect().execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        if row is None:
            return None
        return self._alive_or_interrupted(_run_record(row)) if check else _run_record(row)

    def list_runs(self, group: str | None = None, ids: Sequence[int] | None = None) -> list[RunRecord]:
        sql, params = "SELECT * FROM runs", []
        where = []
        if group is not None:
            where.append("grp = ?")
            params.append(group)
        if ids is not None:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            params.extend(int(i) for i in ids)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.connect().execute(sql + " ORDER BY id DESC", params).fetchall()
        return [self._alive_or_interrupted(_run_record(r)) for r in rows]

    def groups(self) -> list[str]:
        rows = self.connect().execute(
            "SELECT grp FROM runs WHERE grp IS NOT NULL GROUP BY grp ORDER BY MAX(id) DESC").fetchall()
        return [r[0] for r in rows]

    def delete_run(self, run_id: int) -> None:
        """Deletes the run, its rows and its checkpoint (a later run may get the same id)."""
        self._write("DELETE FROM runs WHERE id = ?", (int(run_id),))
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.checkpoint_path(run_id))

    def mark_interrupted(self, live_run_ids: Iterable[int] = ()) -> list[int]:
        """Runs stored as active whose process is gone become 'interrupted' (every reader does
        this as it reads); returns their ids."""
        rows = self.connect().execute(
            f"SELECT * FROM runs WHERE status IN ({','.join('?' * len(ACTIVE_STATUSES))})",
            ACTIVE_STATUSES).fetchall()
        live = set(live_run_ids)
        return [r.id for r in map(_run_record, rows)
                if r.id not in live and self._alive_or_interrupted(r).status == "interrupted"]

    def _alive_or_interrupted(self, r: RunRecord) -> RunRecord:
        """The run as it is: one stored as active whose process is gone is stored, and
        returned, as interrupted, with an event saying when it was last seen."""
        if r.status not in ACTIVE_STATUSES or writer_alive(r):
            return r
        seen = r.last_seen or r.created
        who = f"process {r.pid} on {r.host}" if r.pid else "process"
        was = "waiting to start" if r.status == "queued" else r.status
        message = (f"the {who} holding this run ({was}) is gone; last seen "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(seen))}; resume it from its "
                   "last checkpoint")
        conn = self.connect()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            # only if nobody changed the run since it was read (a worker ending, a resume)
            cur = conn.execute("UPDATE runs SET status = 'interrupted', updated = ? WHERE id = ? "
                               "AND status = ? AND pid IS ? AND host IS ?",
                               (seen, r.id, r.status, r.pid, r.host))
            if cur.rowcount:
                conn.execute("INSERT INTO events (run_id, step, time, kind, message, data) "
                             "VALUES (?, ?, ?, 'interrupted', ?, ?)",
                             (r.id, max(0, r.iterations - 1), time.time(), message,
                              json.dumps({"last_seen": seen, "pid": r.pid, "host": r.host})))
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (r.id,)).fetchone()
        return _run_record(row) if row else r

    # ---- rows written by a search --------------------------------------------------------------
    def add_steps(self, run_id: int, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        cols = STEP_COLUMNS
        values = [(run_id, *[_jsonable(r.get(c)) for c in cols]) for r in rows]
        conn = self.connect()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(f"INSERT OR REPLACE INTO steps (run_id, {', '.join(cols)}) "
                             f"VALUES ({', '.join('?' * (len(cols) + 1))})", values)
            conn.execute("UPDATE runs SET iterations = ?, updated = ? WHERE id = ?",
                         (int(rows[-1]["step"]) + 1, time.time(), run_id))

    def add_alphas(self, run_id: int, step: int, weights: dict[str, np.ndarray]) -> None:
        vals = []
        for ct, w in weights.items():
            a = np.ascontiguousarray(np.asarray(w, dtype=np.float32))
            vals.append((run_id, step, ct, a.shape[0], a.shape[1], a.tobytes()))
        self._write("INSERT OR REPLACE INTO alphas VALUES (?, ?, ?, ?, ?, ?)", vals, many=True)

    def add_genotype(self, run_id: int, step: int, genotype_json: str, size: int | None) -> None:
        self._write("INSERT OR REPLACE INTO genotypes VALUES (?, ?, ?, ?)",
                    (run_id, step, genotype_json, size))

    def add_event(self, run_id: int, kind: str, message: str, step: int | None = None,
                  data: dict[str, Any] | None = None) -> None:
        self._write("INSERT INTO events (run_id, step, time, kind, message, data) VALUES (?, ?, ?, ?, ?, ?)",
                    (run_id, step, time.time(), kind, message, json.dumps(data) if data else None))

    def add_events(self, run_id: int, events: Sequence[dict[str, Any]]) -> None:
        if not events:
            return
        self._write("INSERT INTO events (run_id, step, time, kind, message, data) VALUES (?, ?, ?, ?, ?, ?)",
                    [(run_id, e.get("step"), e.get("time", time.time()), e["kind"], e["message"],
                      json.dumps(e["data"]) if e.get("data") else None) for e in events], many=True)

    def truncate_after(self, run_id: int, step: int) -> None:
        """Drops rows written after ``step`` (a resumed run redoes them from its checkpoint);
        the run's history (LIFECYCLE_EVENTS: stops, crashes, resumes) stays."""
        conn = self.connect()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            for table in ("steps", "alphas", "genotypes"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ? AND step > ?", (run_id, step))
            conn.execute(f"DELETE FROM events WHERE run_id = ? AND step > ? AND kind NOT IN "
                         f"({','.join('?' * len(LIFECYCLE_EVENTS))})", (run_id, step, *LIFECYCLE_EVENTS))
            conn.execute("UPDATE runs SET iterations = MIN(iterations, ?) WHERE id = ?",
                         (step + 1, run_id))

    # ---- readers ---------------------------------------------------------------------------
    def steps(self, run_id: int, after: int = -1, columns: Sequence[str] | None = None,
              every: int = 1) -> pd.DataFrame:
        """Step rows with step > ``after``; ``every`` > 1 keeps one row in ``every`` (plus
        every architecture step), which is how long runs are read for drawing."""
        cols = list(columns) if columns else list(STEP_COLUMNS)
        for c in cols:
            if c not in STEP_COLUMNS:
                raise KeyError(f"unknown step column {c!r}")
        if "step" not in cols:
            cols.insert(0, "step")
        sql = f"SELECT {', '.join(cols)} FROM steps WHERE run_id = ? AND step > ?"
        params: list[Any] = [int(run_id), int(after)]
        if every > 1:
            sql += " AND (step % ? = 0 OR arch_step = 1)"
            params.append(int(every))
        return pd.read_sql_query(sql + " ORDER BY step", self.connect(), params=params)

    def last_step(self, run_id: int) -> int:
        r = self.connect().execute("SELECT MAX(step) FROM steps WHERE run_id = ?", (int(run_id),)).fetchone()
        return -1 if r[0] is None else int(r[0])

    def alphas(self, run_id: int, cell_type: str, after: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """(steps (T,), weights (T, edges, ops)) of one cell type, after ``after``."""
        rows = self.connect().execute(
            "SELECT step, edges, ops, data FROM alphas WHERE run_id = ? AND cell_type = ? AND step > ? "
            "ORDER BY step", (int(run_id), cell_type, int(after))).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0, 0), dtype=np.float32)
        steps = np.array([r["step"] for r in rows], dtype=np.int64)
        e, k = rows[0]["edges"], rows[0]["ops"]
        data = np.frombuffer(b"".join(r["data"] for r in rows), dtype=np.float32).reshape(len(rows), e, k)
        return steps, data

    def genotypes(self, run_id: int, after: int = -1) -> pd.DataFrame:
        return pd.read_sql_query(
            "SELECT step, genotype, size FROM genotypes WHERE run_id = ? AND step > ? ORDER BY step",
            self.connect(), params=[int(run_id), int(after)])

    def events(self, run_id: int, after_id: int = 0, kinds: Sequence[str] | None = None) -> pd.DataFrame:
        sql = "SELECT id, step, time, kind, message, data FROM events WHERE run_id = ? AND id > ?"
        params: list[Any] = [int(run_id), int(after_id)]
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            params.extend(kinds)
        return pd.read_sql_query(sql + " ORDER BY id", self.connect(), params=params)

    # ---- evaluations and studies ------------------------------------------------------------
    def create_evaluation(self, run_id: int, config: dict[str, Any], status: str = "running") -> int:
        """A new evaluation row; ``status="queued"`` for one a RunManager will start later (the
        row then holds this process's pid until a worker takes it)."""
        cur = self._write("INSERT INTO evaluations (run_id, config, status, created, pid, host, started) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (int(run_id), json.dumps(config), status, time.time(), os.getpid(),
                           socket.gethostname(), time.time() if status == "running" else None))
        return int(cur.lastrowid)

    def start_evaluation(self, eval_id: int) -> None:
        """The calling process (a worker) takes the evaluation: running, with its pid."""
        self._write("UPDATE evaluations SET status = 'running', started = ?, pid = ?, host = ?, "
                    "error = NULL WHERE id = ?",
                    (time.time(), os.getpid(), socket.gethostname(), int(eval_id)))

    def assign_evaluation(self, eval_id: int, pid: int) -> None:
        """A queued evaluation handed to a worker process that is starting (its pid)."""
        self._write("UPDATE evaluations SET pid = ? WHERE id = ? AND status = 'queued'",
                    (int(pid), int(eval_id)))

    def finish_evaluation(self, eval_id: int, status: str, result: dict[str, Any] | None = None,
                          error: str | None = None) -> None:
        r = result or {}
        self._write("UPDATE evaluations SET status = ?, finished = ?, test_acc = ?, params = ?, "
                    "seconds = ?, result = ?, error = ? WHERE id = ?",
                    (status, time.time(), r.get("test_acc"), r.get("params"), r.get("seconds"),
                     json.dumps(r) if r else None, error, int(eval_id)))

    def get_evaluation(self, eval_id: int) -> dict[str, Any] | None:
        """One evaluation row as a dict (config and result parsed), or None."""
        row = self.connect().execute("SELECT * FROM evaluations WHERE id = ?", (int(eval_id),)).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["config"] = json.loads(out["config"]) if out["config"] else {}
        out["result"] = json.loads(out["result"]) if out["result"] else None
        return out

    def evaluations(self, run_ids: Sequence[int] | None = None) -> pd.DataFrame:
        sql = ("SELECT id, run_id, status, created, finished, test_acc, params, seconds, config, error, "
               "pid, host, started FROM evaluations")
        params: list[Any] = []
        if run_ids is not None:
            sql += f" WHERE run_id IN ({','.join('?' * len(run_ids)) or 'NULL'})"
            params = [int(i) for i in run_ids]
        return pd.read_sql_query(sql + " ORDER BY id", self.connect(), params=params)

    def mark_evaluations_interrupted(self) -> list[int]:
        """Evaluations stored as queued or running whose process (on this host) is gone become
        'interrupted': the app that queued them, or the worker that ran them, ended without
        saying so. Another live app's queue is left alone."""
        host = socket.gethostname()
        rows = self.connect().execute(
            "SELECT id, pid, host FROM evaluations WHERE status IN ('queued', 'running')").fetchall()
        gone = [r["id"] for r in rows if r["host"] in (None, host) and not _pid_alive(r["pid"])]
        for eid in gone:
            self._write("UPDATE evaluations SET status = 'interrupted', finished = ?, error = ? "
                        "WHERE id = ? AND status IN ('queued', 'running')",
                        (time.time(), "the process that held this evaluation went away", eid))
        return gone

    def save_study(self, name: str, spec: dict[str, Any]) -> None:
        self._write("INSERT OR REPLACE INTO studies (name, spec, created) VALUES (?, ?, ?)",
                    (name, json.dumps(spec), time.time()))

    def get_study(self, name: str) -> dict[str, Any] | None:
        row = self.connect().execute("SELECT spec FROM studies WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def studies(self) -> list[str]:
        return [r[0] for r in self.connect().execute("SELECT name FROM studies ORDER BY created DESC")]

    def checkpoint_path(self, run_id: int) -> str:
        """Next to the store, in a folder named after it: two stores in one folder number their
        runs alike, and must not resume from each other's checkpoints."""
        path = os.path.abspath(self.path)
        stem = os.path.splitext(os.path.basename(path))[0]
        return os.path.join(os.path.dirname(path), "checkpoints", stem, f"run_{run_id}.pt")

    def recorder(self, run_id: int, log_every: int = 10) -> Any:
        """The search callback that records a run into this store (``core.runs.recorder``).
        A ``Search`` given a store asks it for this, so the engine never imports the runs
        layer."""
        from core.runs.recorder import Recorder
        from core.runs.tensorboard import recording_store

        return Recorder(recording_store(self, run_id), run_id, log_every)


def _run_record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"], name=row["name"], group=row["grp"], method=row["method"], dataset=row["dataset"],
        config=json.loads(row["config"]), status=row["status"], created=row["created"],
        started=row["started"], finished=row["finished"], updated=row["updated"], device=row["device"],
        host=row["host"], pid=row["pid"], error=row["error"], genotype=row["genotype"], size=row["size"],
        iterations=row["iterations"] or 0, total_iterations=row["total_iterations"],
        summary=json.loads(row["summary"]) if row["summary"] else {},
        proc_start=row["proc_start"], seen=row["seen"])


def check_name(field_name: str, value: str | None) -> None:
    """A run's name or group: at most MAX_NAME_CHARS characters, one line."""
    from core.engine.config import ConfigError

    if value is None:
        return
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS or "\n" in value:
        raise ConfigError(field_name, f"must be one line of at most {MAX_NAME_CHARS} characters, got "
                          f"{len(value) if isinstance(value, str) else type(value).__name__}"
                          f"{' characters' if isinstance(value, str) else ''}")


def writer_alive(r: RunRecord, now: float | None = None) -> bool:
    """Whether the process holding the run (its launcher while queued, then its worker) is
    alive: on this host, its pid exists, is no zombie and started when recorded (a reused pid
    started later); on another host, it stamped the run within STALE_SECONDS."""
    if r.host is not None and r.host != socket.gethostname():
        seen = r.last_seen
        return seen is not None and (now or time.time()) - seen < STALE_SECONDS
    if not r.pid or not _pid_alive(r.pid):
        return False
    started = process_start(r.pid)
    if started is None:  # no /proc (macOS): the pid check alone; with /proc: a zombie, or gone
        return not os.path.isdir("/proc/self")
    return r.proc_start is None or abs(started - r.proc_start) < 1e-6


def process_start(pid: int) -> float | None:
    """The process's start time in clock ticks since boot (Linux /proc); None for a zombie or
    where /proc is missing."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the name may hold spaces and parentheses
    if not fields or fields[0] in ("Z", "X"):
        return None
    return float(fields[19])


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return json.dumps(v)
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, bool):
        return int(v)
    return v


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
