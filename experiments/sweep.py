"""Sweeps: one experiment run at every point of a grid of config values, on Dask.

    leastaction sweep NAME --grid steps=10,20,40 --grid method=euler,rk4 [--set key=value]... [--out DIR]

writes

    DIR/sweep.toml                    the experiment, the fixed overrides and the grid
    DIR/000-steps=10-method=euler/    one complete run folder per point (config, manifest, results...)
    DIR/...
    DIR/summary.md|tex|json           one row per point: its grid values, headline results, folder

Every point's config is resolved before anything runs, so a bad key or value in
any point is a `ValueError` with no folder written. The points run on a Dask
cluster: a `distributed.LocalCluster` of `workers` processes with one thread
each by default, or the scheduler at `scheduler` (whose workers must be able
to import `experiments` and write `DIR`). The local cluster serves the Dask
dashboard (its link is announced; `dashboard=False` turns it off), each point's
steps reach the caller's progress as Dask events while it runs, and the
workers' scratch folder is deleted with the cluster. The sweep folder is built in a
temporary sibling and renamed when every point has finished; a point that
raises is recorded in the summary with its error (its own folder is not
written, as for any failed run) and the others are kept.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from . import config as configs
from .runner import Experiment, Progress, _make_parents, _publish, _remove_empty, check_output_dir, no_progress
from .tables import Table

SUMMARY = "summary"
SWEEP_CONFIG = "sweep.toml"


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """`["steps=10,20", "method=euler,rk4"]` -> `{"steps": ["10", "20"], "method": ["euler", "rk4"]}`."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        parts = [v.strip() for v in values.split(",")]
        if not sep or not key or not values.strip() or any(not v for v in parts):
            raise ValueError(f"--grid expects key=v1,v2,...; got {item!r}")
        if key in grid:
            raise ValueError(f"--grid key {key!r} given twice")
        grid[key] = parts
    if not grid:
        raise ValueError("a sweep needs at least one --grid key=v1,v2,...")
    return grid


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", text)


@dataclass(frozen=True)
class Point:
    """One grid point: its folder name, its grid values and the full overrides it runs with."""

    name: str
    values: dict[str, Any]
    overrides: dict[str, Any]


def grid_points(experiment: Experiment, grid: Mapping[str, Sequence[Any]],
                base: Mapping[str, Any] | None = None) -> list[Point]:
    """The cartesian product of `grid` on top of `base`, every point's config resolved
    (a `ValueError` naming the key and the point otherwise)."""
    base = dict(base or {})
    clash = sorted(set(base) & set(grid))
    if clash:
        raise ValueError(f"config key {clash[0]!r} is both set and swept; give it once")
    keys = list(grid)
    points = []
    for i, combo in enumerate(itertools.product(*(grid[k] for k in keys))):
        overrides = {**base, **dict(zip(keys, combo))}
        try:
            config = experiment.resolve(overrides)
        except ValueError as error:
            where = ", ".join(f"{k}={v}" for k, v in zip(keys, combo))
            raise ValueError(f"sweep point {where}: {error}") from None
        values = {k: getattr(config, k) for k in keys}
        name = f"{i:03d}-" + "-".join(_slug(f"{k}={v}") for k, v in values.items())
        points.append(Point(name, values, overrides))
    return points


PROGRESS_TOPIC = "leastaction-sweep-progress"
"""The Dask event topic a point's steps are published on (`Worker.log_event`); the sweep's
client subscribes to it to show progress within each point."""


def _publisher(point: str, topic: str) -> Progress:
    """A `Progress` that publishes each step of the run on the Dask event `topic` (a no-op
    outside a worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return no_progress

    def publish(done: int, total: int, description: str) -> None:
        worker.log_event(topic, {"point": point, "done": done, "total": total, "description": description})

    return publish


def run_point(name: str, overrides: Mapping[str, Any], out: str, topic: str | None = None) -> dict[str, Any]:
    """Run experiment `name` with `overrides` into `out` (on a Dask worker): its
    headline results, or the error it raised. With `topic`, each step of the run is
    published as a Dask event on it (`{"point", "done", "total", "description"}`)."""
    import experiments  # noqa: F401  (float64 in the worker)
    from .catalog import get
    from .runner import run

    experiment = get(name)
    started = time.perf_counter()
    progress = _publisher(Path(out).name, topic) if topic else no_progress
    try:
        record = run(experiment, overrides, out=out, progress=progress)
    except Exception as error:  # recorded in the summary; the point leaves no folder
        return {"status": "failed", "error": f"{type(error).__name__}: {error}",
                "wall_time_seconds": time.perf_counter() - started}
    headline = dict(record.headline(experiment.headline)) if experiment.headline else {
        k: v for k, v in record.results.items() if isinstance(v, (int, float, str, bool))}
    return {"status": "ok", "headline": headline, "wall_time_seconds": time.perf_counter() - started}


@dataclass(frozen=True)
class SweepRecord:
    """A finished sweep: its folder and the summary rows (one per point)."""

    folder: Path
    rows: list[dict[str, Any]]

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "ok"]


def summary_table(experiment: Experiment, grid_keys: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> Table:
    """Grid values, status and headline results of every point."""
    headline = list(dict.fromkeys(k for r in rows for k in r.get("headline", {})))
    body = []
    for r in rows:
        cells = [r["point"], *[r["values"][k] for k in grid_keys], r["status"]]
        cells += [_cell(r.get("headline", {}).get(k, "-")) for k in headline]
        body.append(cells)
    return Table(columns=["point", *grid_keys, "status", *headline], rows=body,
                 caption=f"Sweep of {experiment.name} over {', '.join(grid_keys)}",
                 label=f"tab:sweep-{experiment.name}")


def _cell(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return str(value)
    return value if isinstance(value, (int, float, str)) else json.dumps(value)


def _client(scheduler: str | None, workers: int, threads: int, dashboard: bool, scratch: str | None):
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                           dashboard_address=":0" if dashboard else None, silence_logs=40,
                           local_directory=scratch)
    return Client(cluster), cluster


def run_sweep(
    experiment: Experiment,
    grid: Mapping[str, Sequence[Any]],
    base: Mapping[str, Any] | None = None,
    out: Path | str | None = None,
    force: bool = False,
    scheduler: str | None = None,
    workers: int = 2,
    threads: int = 1,
    progress: Progress = no_progress,
    dashboard: bool = True,
    announce: Callable[[str], None] = lambda message: None,
) -> SweepRecord:
    """Run `experiment` at every point of `grid` on Dask (module docstring).

    Args:
        grid: `{key: [values]}` (strings are parsed with the key's type).
        base: overrides every point shares.
        out: the sweep folder; `runs/sweep-NAME-TIMESTAMP` by default.
        scheduler: a Dask scheduler address; `None` starts a `LocalCluster`.
        workers: the number of worker processes of that local cluster.
        threads: the threads per worker of that local cluster.
        progress: told when a point finishes and, between, each step of a running point
            (`"POINT: step k/n description"`, published by the worker as a Dask event).
        dashboard: serve the local cluster's Dask dashboard (on a free port).
        announce: told the dashboard's link (`"dashboard: URL"`) once the cluster is up.

    A local cluster's workers keep their scratch files (spilled data, locks) in a
    temporary folder that is deleted with the cluster, so a sweep leaves no
    `dask-scratch-space` behind.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "sweep"
        >>> record = experiments.sweep.run_sweep(experiments.CATALOG["quickstart"], {"seed": [0, 1]},
        ...                                  {"steps": 4, "batch": 2}, out=out, workers=1, dashboard=False)
        >>> [row["status"] for row in record.rows], sorted(p.name for p in out.iterdir())[:2]
        (['ok', 'ok'], ['000-seed=0', '001-seed=1'])
    """
    from .runner import default_output_dir

    if workers < 1 or threads < 1:
        raise ValueError(f"a local cluster needs workers >= 1 and threads >= 1; got {workers}, {threads}")
    points = grid_points(experiment, grid, base)
    out = Path(os.path.abspath(out if out is not None else default_output_dir(f"sweep-{experiment.name}")))
    check_output_dir(out, force)
    created = _make_parents(out.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / SWEEP_CONFIG).write_text(tomli_w.dumps({
            "experiment": experiment.name, "base": dict(base or {}),
            "grid": {k: list(v) for k, v in grid.items()},
        }), encoding="utf-8")
        import dask

        scratch = None if scheduler else tempfile.mkdtemp(prefix="leastaction-dask-")
        # every Dask server (the scheduler too) keeps a workspace under "temporary-directory"
        settings = dask.config.set({"temporary-directory": scratch}) if scratch else contextlib.nullcontext()
        try:
            with settings:
                client, cluster = _client(scheduler, workers, threads, dashboard, scratch)
            try:
                from distributed import as_completed

                link = client.dashboard_link if (dashboard or scheduler) else None
                if link:
                    announce(f"dashboard: {link}")
                topic = f"{PROGRESS_TOPIC}-{os.urandom(4).hex()}"
                state = {"done": 0}

                def step(event) -> None:
                    message = event[1] if isinstance(event, tuple) else event
                    if isinstance(message, dict) and message.get("total"):
                        progress(state["done"], len(points), f"{message['point']}: step {message['done']}/"
                                 f"{message['total']} {message['description']}")

                client.subscribe_topic(topic, step)
                futures = {client.submit(run_point, experiment.name, p.overrides, str(tmp / p.name), topic,
                                         pure=False, key=f"{experiment.name}-{p.name}-{os.urandom(4).hex()}"): p
                           for p in points}
                answers = {}
                where = "scheduler " + scheduler if scheduler else "a local cluster"
                progress(0, len(points), f"{len(points)} points on {where}")
                for future in as_completed(futures):
                    point = futures[future]
                    answers[point.name] = future.result()
                    state["done"] += 1
                    progress(state["done"], len(points), f"point {point.name}: {answers[point.name]['status']}")
                client.unsubscribe_topic(topic)
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        rows = []
        for p in points:
            answer = answers[p.name]
            row = {"point": p.name, "folder": p.name if answer["status"] == "ok" else None,
                   "values": {k: v for k, v in p.values.items()},
                   "config": {k: v for k, v in configs.as_dict(experiment.resolve(p.overrides)).items()}, **answer}
            rows.append(row)
        table = summary_table(experiment, list(grid), rows)
        table.save(tmp, SUMMARY)
        (tmp / f"{SUMMARY}.json").write_text(json.dumps({
            "experiment": experiment.name, "grid": {k: list(v) for k, v in grid.items()},
            "base": dict(base or {}), "points": rows,
        }, indent=2, default=str) + "\n", encoding="utf-8")
        _publish(tmp, out, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise
    return SweepRecord(folder=out, rows=rows)


__all__ = ["PROGRESS_TOPIC", "Point", "SweepRecord", "grid_points", "parse_grid", "run_point", "run_sweep", "summary_table"]
