"""`leastaction sweep`: a grid of quickstart runs on a Dask LocalCluster."""

from __future__ import annotations

import json
import os

import pytest

from experiments import CATALOG
from experiments.cli import app
from experiments.sweep import grid_points, parse_grid

from .conftest import assert_results_close


def test_parse_grid_and_points_resolve_every_config():
    grid = parse_grid(["steps=4,6", "method=euler,rk4"])
    assert grid == {"steps": ["4", "6"], "method": ["euler", "rk4"]}
    points = grid_points(CATALOG["quickstart"], grid, {"batch": "3"})
    assert [p.name for p in points] == ["000-steps=4-method=euler", "001-steps=4-method=rk4",
                                        "002-steps=6-method=euler", "003-steps=6-method=rk4"]
    assert points[3].values == {"steps": 6, "method": "rk4"}
    assert points[3].overrides == {"batch": "3", "steps": "6", "method": "rk4"}


@pytest.mark.parametrize("grid, message", [
    (["steps"], "--grid expects key=v1,v2"),
    (["steps=4,,6"], "--grid expects key=v1,v2"),
    (["stpes=4,6"], "unknown config key 'stpes'"),
    (["steps=4,0"], "sweep point steps=0: config key 'steps' must be >= 1"),
    (["steps=4", "steps=6"], "given twice"),
])
def test_bad_grid_is_a_clear_error_before_any_work(cli, tmp_path, grid, message):
    args = ["sweep", "quickstart", "--out", str(tmp_path / "sweep")]
    for item in grid:
        args += ["--grid", item]
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert os.listdir(tmp_path) == []


def test_swept_key_also_set_is_refused(cli, tmp_path):
    result = cli.invoke(app, ["sweep", "quickstart", "--grid", "steps=4,6", "--set", "steps=5",
                              "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "both set and swept" in result.output


@pytest.mark.parametrize("steps, workers", [
    # 2 points of one shape, the second reusing the worker's compiled programs (about 40 s; the
    # default suite runs a local cluster through run_sweep in the dashboard test below)
    pytest.param("6", 1, marks=pytest.mark.slow),
    pytest.param("4,6", 2, marks=pytest.mark.slow),  # 4 points over 2 processes: about 70 s on 2 cores
])
def test_sweep_on_a_local_cluster(cli, tmp_path, quickstart_folder, steps, workers):
    """`workers` worker processes x 1 thread; one complete run folder per point, the summary in
    md, tex and json; the point with the shared small quickstart's config reproduces
    that run's results (a direct run, not on Dask)."""
    out = tmp_path / "sweep"
    result = cli.invoke(app, ["sweep", "quickstart", "--grid", f"steps={steps}", "--grid", "seed=0,1",
                              "--set", "batch=4", "--set", "t_final=1.5", "--out", str(out),
                              "--workers", str(workers), "--threads", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    points = [(st, se) for st in steps.split(",") for se in (0, 1)]
    names = [f"{i:03d}-steps={st}-seed={se}" for i, (st, se) in enumerate(points)]
    assert sorted(os.listdir(out)) == sorted(names + ["summary.json", "summary.md", "summary.tex", "sweep.toml"])
    summary = json.loads((out / "summary.json").read_text())
    assert [p["point"] for p in summary["points"]] == names
    assert all(p["status"] == "ok" for p in summary["points"])
    for point in summary["points"]:
        folder = out / point["folder"]
        assert {"config.toml", "manifest.json", "results.json", "log.txt"} <= set(os.listdir(folder))
        assert point["config"]["batch"] == 4
        results = json.loads((folder / "results.json").read_text())
        assert point["headline"]["gradient.relative_l2_error"] == results["gradient"]["relative_l2_error"]
        assert results["gradient"]["relative_l2_error"] <= 1e-12
    md = (out / "summary.md").read_text()
    assert md.count("| 00") == len(names) and "gradient.relative_l2_error" in md
    assert r"\toprule" in (out / "summary.tex").read_text()
    shared = next(n for n in names if n.endswith("steps=6-seed=0"))
    assert (out / shared / "config.toml").read_bytes() == (quickstart_folder / "config.toml").read_bytes()
    assert_results_close(json.loads((quickstart_folder / "results.json").read_text()),
                         json.loads((out / shared / "results.json").read_text()))


@pytest.mark.slow
def test_sweep_on_an_existing_scheduler_by_address(cli, tmp_path):
    """`--scheduler ADDRESS` sends the points to a cluster that is already running."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        out = tmp_path / "sweep"
        result = cli.invoke(app, ["sweep", "quickstart", "--grid", "seed=0,1", "--set", "steps=4",
                                  "--set", "batch=2", "--scheduler", cluster.scheduler_address,
                                  "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert [p["status"] for p in summary["points"]] == ["ok", "ok"]


@pytest.mark.slow  # starts a local Dask cluster whose worker compiles quickstart anew (about 25 s on one
# core, 55 s in a loaded suite); the default suite checks the grid, its points and its errors above
def test_sweep_shows_its_dashboard_and_progress_within_points_and_cleans_up(tmp_path, monkeypatch):
    """The local cluster serves the dashboard (its link announced), every step of a running point
    reaches the progress callback, and the workers' scratch folder is deleted: the temporary root
    is empty afterwards and dask's default scratch location (DASK_TEMPORARY_DIRECTORY) is unused."""
    import tempfile

    from experiments import sweep as sweeps

    root, default = tmp_path / "tmp", tmp_path / "dask-default"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setenv("DASK_TEMPORARY_DIRECTORY", str(default))
    announced, steps = [], []
    record = sweeps.run_sweep(CATALOG["quickstart"], {"seed": [0, 1]}, {"steps": 6, "batch": 4, "t_final": 1.5},
                          out=tmp_path / "sweep", workers=1, announce=announced.append,
                          progress=lambda done, total, text: steps.append((done, total, text)))
    assert [row["status"] for row in record.rows] == ["ok", "ok"]
    (link,) = announced
    assert link.startswith("dashboard: http://") and link.endswith("/status")
    for point in ("000-seed=0", "001-seed=1"):
        within = [text for _, total, text in steps if text.startswith(f"{point}: step ")]
        assert f"{point}: step 6/6 done" in within, steps
        assert len(within) >= 6
    assert steps[-1][:2] == (2, 2)
    assert os.listdir(root) == [] and not default.exists()


@pytest.mark.slow  # a third local cluster (about 30 s); run_sweep's announced link is checked by the test above
def test_sweep_cli_prints_the_dashboard_link(cli, tmp_path):
    result = cli.invoke(app, ["sweep", "quickstart", "--grid", "seed=0", "--set", "steps=6", "--set", "batch=4",
                              "--set", "t_final=1.5", "--workers", "1", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "dashboard: http://" in result.output
