"""Command line: python -m core {search, resume, delete, list, export, evaluate, study, bench}.

Bad input exits with status 2 and one line naming the field and the allowed values; nothing is
stored for a search that cannot start (its device and data are checked first).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any, Sequence

from core.engine.config import (
    ConfigError,
    SearchConfig,
    list_methods,
    list_presets,
    make_config,
    parse_value,
)


def _overrides(pairs: Sequence[str]) -> dict[str, Any]:
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise ConfigError("--set", f"expected key=value, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = parse_value(k.strip(), v.strip())
    return out


def build_config(args: argparse.Namespace) -> SearchConfig:
    over = _overrides(args.set)
    for flag, key in (("dataset", "dataset"), ("data_dir", "data_dir"), ("device", "device"),
                      ("seed", "seed")):
        v = getattr(args, flag, None)
        if v is not None:
            over[key] = v
    return make_config(args.preset, args.method, **over)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="demo", help=f"data/budget preset: {', '.join(list_presets())}")
    p.add_argument("--method", default="darts-prime", help=f"method preset: {', '.join(list_methods())}")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--dataset", default=None)
    p.add_argument("--data-dir", dest="data_dir", default=None)
    p.add_argument("--device", default=None, help="auto, cpu, cuda or mps")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any SearchConfig field (repeatable)")


class _ProgressBar:
    """A one-line progress bar on stderr (a Search callback)."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self._last = 0.0
        self._t0 = time.time()

    def on_search_start(self, s): self._t0 = time.time()
    def on_epoch_start(self, s, e): ...
    def on_epoch_end(self, s, e, acc, loss): self._draw(s, force=True, note=f"val acc {acc:.3f}")
    def on_search_error(self, s, exc): self.stream.write("\n")

    def on_step_end(self, s, row):
        self._draw(s)

    def on_search_end(self, s, result):
        self._draw(s, force=True)
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, s, force: bool = False, note: str = "") -> None:
        now = time.time()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        done, total = s.step, max(1, s.total_iterations)
        frac = done / total
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        elapsed = now - self._t0
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        self.stream.write(f"\r[{bar}] {done}/{total} it, {s.arch_steps} arch steps, "
                          f"{elapsed:.0f}s, eta {eta:.0f}s {note}   ")
        self.stream.flush()


def _startable(config: SearchConfig) -> Any:
    """Checks the device and loads the data (ConfigError naming the field if either fails);
    returns the data, for the search."""
    from core.data import DatasetError, load_dataset
    from core.runs.runner import check_device

    check_device(config)
    try:
        return load_dataset(config.dataset, config.data_dir or None, config.image_size, config.seed)
    except DatasetError as exc:
        raise ConfigError("dataset", _first_line(exc)) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def cmd_search(args: argparse.Namespace) -> int:
    from core.engine.device import configure_threads
    from core.runs.store import RunStore, check_name

    config = build_config(args)
    if args.tensorboard:
        config = config.replace(tensorboard_dir=os.path.abspath(args.tensorboard))
    check_name("--name", args.name)
    check_name("--group", args.group)
    configure_threads(config.threads, alone=True)
    data = _startable(config)
    store = RunStore(args.db)
    run_id = store.create_run(config, name=args.name, group=args.group)
    return _search(args, store, run_id, config, data, resume=False)


def cmd_resume(args: argparse.Namespace) -> int:
    """Continues a run that is not live (interrupted, stopped or failed) from its latest
    checkpoint, in this process."""
    from core.engine.device import configure_threads
    from core.runs.store import RESUMABLE_STATUSES, RunStore

    store = RunStore(args.db)
    run = _stored_run(store, args.run_id)
    if run.status not in RESUMABLE_STATUSES:
        why = ("it finished" if run.status == "finished" else
               f"it is {run.status} in process {run.pid} on {run.host}; stop it there first")
        raise ConfigError("run_id", f"run {run.id} cannot be resumed: {why}")
    config = SearchConfig.from_dict(run.config)
    configure_threads(config.threads, alone=True)
    data = _startable(config)
    store.queue_run(run.id)
    return _search(args, store, run.id, config, data, resume=True)


def cmd_delete(args: argparse.Namespace) -> int:
    from core.runs.store import ACTIVE_STATUSES, RunStore

    store = RunStore(args.db)
    run = _stored_run(store, args.run_id)
    if run.status in ACTIVE_STATUSES:  # read live: a dead one reads interrupted
        raise ConfigError("run_id", f"run {run.id} is {run.status} in process {run.pid} on "
                          f"{run.host}; stop it before deleting it")
    store.delete_run(run.id)
    print(f"deleted run {run.id} ({run.name})")
    return 0


def _stored_run(store: Any, run_id: int) -> Any:
    run = store.get_run(run_id)
    if run is None:
        raise ConfigError("run_id", f"no run {run_id} in {store.path}")
    return run


def _search(args: argparse.Namespace, store: Any, run_id: int, config: SearchConfig, data: Any,
            resume: bool) -> int:
    from core.engine.search import Search

    callbacks = [] if args.json or args.quiet else [_ProgressBar()]
    stop = threading.Event()
    try:
        result = Search(config, store, run_id, callbacks=callbacks, data=data, resume=resume).run(stop)
    except KeyboardInterrupt:
        store.update_run(run_id, status="stopped")
        print(f"run {run_id} stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        import traceback
        store.update_run(run_id, status="failed", error=f"{exc}\n\n{traceback.format_exc()}")
        store.add_event(run_id, "failed", str(exc))
        print(f"error: {_first_line(exc)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"run {run_id} {result.status}: {result.iterations} iterations, {result.arch_steps} "
              f"architecture steps, val acc {result.val_acc}, size {result.size:,} params, "
              f"{result.seconds:.1f}s")
        print(result.genotype)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from core.runs.store import RunStore
    runs = RunStore(args.db).list_runs(group=args.group)
    if args.json:
        print(json.dumps([{"id": r.id, "name": r.name, "group": r.group, "method": r.method,
                           "dataset": r.dataset, "status": r.status, "iterations": r.iterations,
                           "size": r.size, "genotype": r.genotype} for r in runs]))
        return 0
    print(f"{'id':>4}  {'name':<28} {'method':<12} {'dataset':<8} {'status':<11} {'iters':>6} {'size':>10}")
    for r in runs:
        print(f"{r.id:>4}  {r.name[:28]:<28} {str(r.method):<12} {str(r.dataset):<8} {r.status:<11} "
              f"{r.iterations:>6} {r.size or 0:>10,}")
    return 0


def _export_tracking(store: Any, args: argparse.Namespace) -> int:
    """TensorBoard event files or an MLflow run (``core.viz.tracking``)."""
    from core.runs.tensorboard import run_logdir
    from core.viz.tracking import export_mlflow, export_tensorboard, mlflow_uri

    run = _stored_run(store, args.run_id)
    if args.format == "tensorboard":
        root = args.out or "tensorboard"
        if os.path.exists(root) and not os.path.isdir(root):
            raise ConfigError("--out", f"must be a folder for TensorBoard's event files; {root!r} is a file")
        logdir = run_logdir(root, run.id, run.name)
        for note in export_tensorboard(store, run.id, logdir):
            print(f"note: {note}", file=sys.stderr)
        print(f"run {run.id} written to {logdir}; view it with: tensorboard --logdir {root}")
        return 0
    uri = mlflow_uri(args.out)
    try:
        mlflow_id = export_mlflow(store, run.id, uri)
    except Exception as exc:  # an unreachable server or a bad URI is the user's to fix
        raise ConfigError("--out", f"MLflow at {uri} refused the run: {_first_line(exc)}") from None
    print(f"run {run.id} logged to MLflow at {uri} as run {mlflow_id}; view it with: "
          f"mlflow ui --backend-store-uri {uri}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.runs.store import RunStore
    from core.viz.export import export_run
    store = RunStore(args.db)
    if args.format in ("tensorboard", "mlflow"):
        return _export_tracking(store, args)
    try:
        text = export_run(store, args.run_id, args.format, cell_type=args.cell)
    except (KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        mode = "wb" if isinstance(text, bytes) else "w"
        with open(args.out, mode) as f:
            f.write(text)
    else:
        sys.stdout.write(text if isinstance(text, str) else text.decode())
        if isinstance(text, str) and not text.endswith("\n"):
            sys.stdout.write("\n")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from core.runs.bench import bench
    config = build_config(args)
    results = bench(config, iters=args.iters, warmup=args.warmup, compare_plain=args.compare,
                    threads=args.threads)
    if args.json:
        print(json.dumps(results if args.compare else results["fast" if config.fast else "plain"]))
    else:
        for k, r in results.items():
            if isinstance(r, dict):
                gpu = f", peak GPU {r['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in r else ""
                print(f"{k:>5}: {r['iters_per_s']:.2f} it/s, {r['images_per_s']:.0f} images/s, "
                      f"{r['ms_per_iter']:.1f} ms/it, peak RSS {r['peak_rss_mb']:.0f} MB{gpu} "
                      f"({r['device']}, {r['threads']} threads)")
        if "speedup" in results:
            lo, hi = results["speedup_range"]
            print(f"fast/plain speed-up: {results['speedup']:.2f}x (median of {results['blocks']} "
                  f"interleaved block pairs; pairs {lo:.2f}-{hi:.2f}x)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core", description="PRIME Explorer engine")
    parser.add_argument("--db", default=None, help="run store (default $PRIME_EXPLORER_DB or runs/explorer.sqlite)")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("search", help="run a search and store it")
    _add_config_args(p)
    p.add_argument("--name", default=None)
    p.add_argument("--group", default=None)
    p.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="also write TensorBoard event files as it runs, in DIR/run-ID-NAME")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("resume", help="continue an interrupted, stopped or failed run from its "
                       "latest checkpoint")
    p.add_argument("run_id", type=int)
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("delete", help="delete a run that is not live, its rows and checkpoint")
    p.add_argument("run_id", type=int)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("list", help="list stored runs")
    p.add_argument("--group", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("export", help="export a run")
    p.add_argument("run_id", type=int)
    p.add_argument("--format", default="genotype",
                   choices=["genotype", "json", "dot", "csv", "tensorboard", "mlflow"])
    p.add_argument("--cell", default="normal", choices=["normal", "reduce"], help="for dot")
    p.add_argument("--out", default=None,
                   help="a file; for tensorboard a log folder (default tensorboard/: the run "
                        "goes in DIR/run-ID-NAME); for mlflow a tracking URI or a folder "
                        "(default mlruns/)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", help="time search iterations")
    _add_config_args(p)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--compare", action="store_true", help="also time the plain path, its iterations interleaved with the fast path's in blocks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    # Subcommands added by later modules (evaluate, study) register here.
    for extra in _EXTRA_COMMANDS:
        extra(sub)
    for p in sub.choices.values():  # --db also works after the subcommand
        p.add_argument("--db", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    args = parser.parse_args(argv)
    if getattr(args, "db", None) is None:
        from core.runs.store import default_db_path
        args.db = default_db_path()
    import sqlite3

    from core.data import DatasetError

    try:
        return args.func(args)
    except (ConfigError, DatasetError) as exc:
        print(f"error: {_first_line(exc)}", file=sys.stderr)
        return 2
    except (sqlite3.DatabaseError, RuntimeError) as exc:  # not a store, or a newer one
        print(f"error: --db: {_first_line(exc)}", file=sys.stderr)
        return 2


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.engine.device import configure_threads
    from core.engine.evaluate import make_eval_config
    from core.runs.evaluation import evaluate_run, run_genotype
    from core.runs.store import RunStore

    try:
        base = make_eval_config(args.preset)
        overrides: dict[str, Any] = {}
        for p in args.set or []:
            k, _, v = (x.strip() for x in p.partition("="))
            if not hasattr(base, k):
                raise ValueError(f"{k}: unknown evaluation setting")
            current = getattr(base, k)
            if isinstance(current, bool) or k == "augment":
                overrides[k] = v.lower() in ("1", "true", "yes", "on")
            else:
                overrides[k] = type(current)(v) if current is not None else v
        cfg = make_eval_config(args.preset, **overrides)
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_threads(0)
    store = RunStore(args.db)
    if store.get_run(args.run_id) is None:
        print(f"error: run_id: no run {args.run_id} in {store.path}", file=sys.stderr)
        return 2
    try:  # a stored genotype that does not parse is the run's fault, not a crash
        run_genotype(store, args.run_id)
    except (ValueError, KeyError, TypeError) as exc:
        print(f"error: genotype: run {args.run_id}'s stored genotype cannot be read: "
              f"{_first_line(exc)}", file=sys.stderr)
        return 2
    result = evaluate_run(store, args.run_id, cfg)
    if args.json:
        print(json.dumps({"run_id": args.run_id, **result.to_dict()}))
    else:
        print(f"run {args.run_id}: test accuracy {result.test_acc:.4f}, {result.params:,} parameters, "
              f"{result.seconds:.1f}s ({cfg.preset} evaluation)")
    return 0


def _study_method_lines(m: dict[str, Any]) -> str:
    """Two lines per method of ``study``'s printout: what it scored, then what the search did
    (means over seeds; '-' where no seed has the figure)."""
    def f(v: Any, fmt: str) -> str:
        return "-" if v is None or v != v else format(v, fmt)

    return (f"  {m['method']:<14} val acc {f(m['val_acc_mean'], '.3f')}  test acc "
            f"{f(m['test_acc_mean'], '.3f')} +- {f(m['test_acc_std'], '.3f')}  size "
            f"{f(m['size_mean'], ',.0f')}\n"
            f"  {'':<14} pruned {f(m.get('pruned_ops_mean'), '.1f')} ops "
            f"({f(m.get('pruned_pct_mean'), '.1f')}%)  separation {f(m.get('separation_mean'), '.2f')}x "
            f"({f(m.get('separated_edges_mean'), '.0%')} of edges >= 2x)  genotype last changed at "
            f"iteration {f(m.get('last_genotype_change_mean'), '.0f')}  arch steps "
            f"{f(m.get('arch_steps_mean'), '.1f')}")


def cmd_study(args: argparse.Namespace) -> int:
    from core.engine.device import configure_threads
    from core.runs.runner import run_study
    from core.runs.store import RunStore
    from core.runs.study import StudySpec
    from core.viz.compare import study_summary

    if args.resume_study is not None and args.ray is None:
        raise ConfigError("--resume-study", "needs --ray (a local study's runs resume one by one: "
                          "python -m core resume RUN)")
    spec = None
    if args.resume_study is None:
        if not args.methods:
            raise ConfigError("--methods", "comma-separated method presets (2-5), e.g. "
                              "darts-prime,prime-crb; or --resume-study NAME with --ray")
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        name = args.name or f"study-{time.strftime('%Y%m%d-%H%M%S')}"
        spec = StudySpec(name=name, methods=methods, seeds=args.seeds, preset=args.preset,
                         overrides=_overrides(args.set), evaluate=args.evaluate,
                         eval_preset=args.eval_preset)
        spec.validate()
    else:
        name = args.resume_study
    configure_threads(0)
    log = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    store, t0 = RunStore(args.db), time.time()
    if args.ray is not None:
        ids = _study_on_ray(store, spec, args, log)
    else:
        ids = run_study(store, spec, max_concurrent=args.concurrency, progress=log)
    summary = {**study_summary(store, ids), "seconds": time.time() - t0}
    if args.json:
        print(json.dumps({"study": name, **summary}, default=str))
        return 0
    print(f"study {name}: {len(summary['runs'])} runs in {summary['seconds']:.0f}s")
    for m in summary["methods"]:
        print(_study_method_lines(m))
    a = summary["agreement"]
    print(f"  agreement within methods {a['within']}, across methods {a['across']}")
    return 0


def _study_on_ray(store: Any, spec: Any, args: argparse.Namespace, log: Any) -> list[int]:
    try:
        from core.runs.ray_study import RayOptions, run_ray_study
    except ImportError as exc:
        raise ConfigError("--ray", f"needs the ray package (pip install -r requirements.txt): "
                          f"{_first_line(exc)}") from None
    options = RayOptions(address=args.ray or None, cpus_per_trial=args.cpus_per_trial,
                         gpus_per_trial=args.gpus_per_trial, max_retries=args.ray_retries)
    try:
        options.validate()
    except ValueError as exc:
        raise ConfigError("--ray", str(exc)) from None
    try:
        return run_ray_study(store, spec, options, resume_name=args.resume_study, progress=log)
    except ConfigError:  # the study's own fields (a name taken, ...): already named
        raise
    except ValueError as exc:  # a stored study that is not there
        raise ConfigError("--resume-study", str(exc).removeprefix("study: ")) from None
    except ConnectionError as exc:  # no cluster at that address
        raise ConfigError("--ray", f"no Ray cluster at {args.ray!r}: {_first_line(exc)}") from None


def _add_extra(sub) -> None:
    p = sub.add_parser("evaluate", help="train a run's cell from scratch and test it")
    p.add_argument("run_id", type=int)
    p.add_argument("--preset", default="demo", help="evaluation preset: demo, paper, tiny")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("study", help="run methods x seeds and compare them")
    p.add_argument("--methods", default=None, help="comma-separated method presets (2-5)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--preset", default="demo")
    p.add_argument("--name", default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--evaluate", action="store_true")
    p.add_argument("--eval-preset", dest="eval_preset", default="demo")
    p.add_argument("--concurrency", type=int, default=2, help="local runs at once (not with --ray)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the trials on Ray: auto, ray://host:10001, or none for a local Ray "
                        "(docs/cluster.md)")
    p.add_argument("--cpus-per-trial", dest="cpus_per_trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", dest="gpus_per_trial", type=float, default=0.0)
    p.add_argument("--ray-retries", dest="ray_retries", type=int, default=2,
                   help="retries of a trial whose worker or node died, each from its last checkpoint")
    p.add_argument("--resume-study", dest="resume_study", default=None, metavar="NAME",
                   help="with --ray: run a stored study's unfinished trials")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_study)


_EXTRA_COMMANDS: list = [_add_extra]

if __name__ == "__main__":
    sys.exit(main())
