"""The `leastaction` command line: list, run, and its one-line errors."""

from __future__ import annotations

import json
import os

import pytest

from experiments import config as configs
from experiments import read_config
from experiments.catalog import CATALOG
from experiments.cli import app

from .conftest import SMALL, assert_results_close


@pytest.mark.smoke
def test_list_shows_quickstart(cli):
    result = cli.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    assert "quickstart" in result.output
    assert "neural ODE" in result.output


def test_tables_are_readable_at_80_columns(cli, tmp_path):
    """`list`, `compare --list` and a compare run's tables fit 80 columns: no value is cut to "..."
    (long ones fold onto further lines) and every line is at most 80 characters."""
    outputs = [cli.invoke(app, ["list"], env={"COLUMNS": "80"}),
               cli.invoke(app, ["compare", "--list"], env={"COLUMNS": "80"}),
               cli.invoke(app, ["compare", "-p", "resnet", "-m", "jax-grad", "-m", "least-action-reversible-heun",
                                "--repeats", "1", "--out", str(tmp_path / "c")],
                          env={"COLUMNS": "80"})]
    for result in outputs:
        assert result.exit_code == 0, result.output
        assert "\u2026" not in result.output and "..." not in result.output
        # the run folder's path is as long as pytest's tmp_path makes it: not a table line
        assert max(len(line) for line in result.stdout.splitlines() if not line.startswith("folder: ")) <= 80
    rows: dict = {}  # the list table's rows, each column's folded lines joined again
    for line in outputs[0].stdout.splitlines():
        cells = line.split("│")
        if len(cells) == 5:
            if cells[1].strip():
                name = cells[1].strip()
                rows[name] = ["", ""]
            rows[name] = [rows[name][0] + cells[2].strip(), rows[name][1] + cells[3].strip()]
    assert set(rows) == set(CATALOG)
    for name, (description, defaults) in rows.items():
        assert description.replace(" ", "") == CATALOG[name].description.replace(" ", ""), name
        expected = "".join(f"{k}={v!r}" for k, v in configs.as_dict(CATALOG[name].config).items())
        assert defaults.replace(" ", "") == expected.replace(" ", ""), name
    assert "least-action-reversible-heun" in "".join(outputs[2].stdout.split()).replace("│", "")
    assert "ms" in outputs[2].stdout.split() and "max" in outputs[2].stdout.split()


@pytest.mark.smoke
def test_help_texts_keep_their_brackets(cli):
    result = cli.invoke(app, ["verify", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert "[verify] rtol" in result.output and "[verify] table" in " ".join(result.output.split())
    assert "[default: a deleted temp" in result.output


def test_run_summary_names_folder_and_gradient_error(quickstart_run):
    out, output = quickstart_run
    assert f"folder: {out}" in output
    assert "gradient.relative_l2_error" in output
    assert "quickstart finished in" in output


@pytest.mark.slow  # one more quickstart run (about 7 s on one core, most of it drawing the figures);
# `--quiet` output is checked in the default suite through `reproduce --quiet` (test_reproduce.py)
def test_quiet_prints_only_the_folder(cli, tmp_path):
    out = tmp_path / "quiet"
    result = cli.invoke(app, ["run", "quickstart", "--out", str(out), "--quiet", *SMALL])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert (out / "results.json").is_file()


def test_unknown_experiment_lists_valid_names(cli, tmp_path):
    result = cli.invoke(app, ["run", "no-such-experiment", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "unknown experiment 'no-such-experiment'" in result.output
    for name in CATALOG:
        assert name in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "setting, message",
    [
        ("nonsense=1", "unknown config key 'nonsense'"),
        ("steps=2.5", "config key 'steps' expects int"),
        ("seed=abc", "config key 'seed' expects int"),
        ("t_final=soon", "config key 't_final' expects float"),
        ("scale=nan", "config key 'scale' must be finite"),
        ("t_final=inf", "config key 't_final' must be finite"),
        ("dim=3", "config key 'dim' must be 2"),
        ("steps=0", "config key 'steps' must be >= 1"),
        ("method=rk5", "config key 'method'"),
        ("steps", "--set expects key=value"),
    ],
)
@pytest.mark.smoke
def test_bad_setting_is_one_line_error(cli, tmp_path, setting, message):
    out = tmp_path / "bad"
    result = cli.invoke(app, ["run", "quickstart", "--out", str(out), "--set", setting])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == []


def test_unknown_key_error_lists_valid_keys(cli, tmp_path):
    result = cli.invoke(app, ["run", "quickstart", "--out", str(tmp_path / "x"), "--set", "stpes=3"])
    assert result.exit_code == 2
    for key in ("seed", "dim", "steps", "t_final", "batch", "scale", "method"):
        assert key in result.output


def test_existing_folder_without_force_is_untouched(cli, tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    result = cli.invoke(app, ["run", "quickstart", "--out", str(out), *SMALL])
    assert result.exit_code == 2
    assert "already exists; pass --force to overwrite" in result.output
    assert os.listdir(out) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == ["existing"]


@pytest.mark.slow  # one more quickstart run (about 7 s on one core)
def test_force_replaces_existing_folder_with_a_rerun_from_its_config(quickstart_run, cli, tmp_path):
    """Re-running with the values of `config.toml` (through `--set`) reproduces
    results.json; with `--force` the run replaces a folder that already exists."""
    first, _ = quickstart_run
    out = tmp_path / "existing"
    out.mkdir()
    (out / "stale.txt").write_text("old run")
    name, values = read_config(first)
    settings = [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    result = cli.invoke(app, ["run", name, "--out", str(out), "--force", *settings])
    assert result.exit_code == 0, result.output
    assert not (out / "stale.txt").exists()
    assert sorted(os.listdir(tmp_path)) == ["existing"]
    assert (out / "config.toml").read_bytes() == (first / "config.toml").read_bytes()
    assert_results_close(json.loads((first / "results.json").read_text()),
                         json.loads((out / "results.json").read_text()))


def test_parent_that_is_a_file_is_a_clear_error(cli, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    out = blocker / "run"
    result = cli.invoke(app, ["run", "quickstart", "--out", str(out), *SMALL])
    assert result.exit_code == 2
    assert "cannot create output folder" in result.output
    assert str(blocker) in result.output
    assert "Traceback" not in result.output


def test_unwritable_parent_is_a_clear_error(cli, tmp_path, monkeypatch):
    """The runner asks `os.access`; as root chmod does not remove write access, so the
    answer for this one folder is patched to what an ordinary user would get."""
    parent = tmp_path / "locked"
    parent.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(parent) else real_access(path, mode))
    result = cli.invoke(app, ["run", "quickstart", "--out", str(parent / "run"), *SMALL])
    assert result.exit_code == 2
    assert f"{parent} is not writable" in result.output
    assert list(parent.iterdir()) == []


def test_failure_inside_experiment_leaves_nothing(cli, tmp_path, monkeypatch):
    def explode(config, folder, progress):
        progress(1, 2, "writing something first")
        (folder.path / "partial.txt").write_text("half done")
        raise RuntimeError("experiment failed midway")

    broken = CATALOG["quickstart"].__class__(
        name="quickstart", description="fails", config=CATALOG["quickstart"].config, run=explode
    )
    monkeypatch.setitem(CATALOG, "quickstart", broken)
    out = tmp_path / "nested" / "deeper" / "run"
    result = cli.invoke(app, ["run", "quickstart", "--out", str(out), *SMALL])
    assert result.exit_code != 0
    assert isinstance(result.exception, RuntimeError)
    assert os.listdir(tmp_path) == []


def _mismatched(config, folder, progress):
    """A run with arrays of mismatched shapes: JAX raises a TypeError deep inside. (A loss target
    of the wrong shape is caught earlier, by `Loss.check_shapes`, as a ValueError naming both.)"""
    import jax.numpy as jnp

    return {"loss": float(jnp.sum((jnp.ones((4, 2)) - jnp.ones(3)) ** 2))}


@pytest.mark.smoke
def test_shape_mismatch_is_one_line_and_debug_shows_the_traceback(cli, tmp_path, monkeypatch):
    broken = CATALOG["quickstart"].__class__(
        name="quickstart", description="mismatched", config=CATALOG["quickstart"].config, run=_mismatched)
    monkeypatch.setitem(CATALOG, "quickstart", broken)
    result = cli.invoke(app, ["run", "quickstart", "--out", str(tmp_path / "a"), *SMALL])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: quickstart failed: shape mismatch: Incompatible shapes for broadcasting")
    assert "hint:" in line and "--debug" in line
    assert not (tmp_path / "a").exists()
    debug = cli.invoke(app, ["--debug", "run", "quickstart", "--out", str(tmp_path / "b"), *SMALL])
    assert debug.exit_code != 0 and isinstance(debug.exception, (TypeError, ValueError))
    assert not (tmp_path / "b").exists()


@pytest.mark.slow  # a fresh interpreter that imports and compiles quickstart before XLA fails (about
# 10 s on one core); the one-line error of a failing run is checked in the default suite above
def test_out_of_memory_is_one_line(tmp_path):
    """A real out-of-memory failure: quickstart with 10^8 steps in a process limited to 6 GB of
    address space (XLA asks for 25.6 GB and fails); one line, exit 1, no folder."""
    import subprocess
    import sys

    out = tmp_path / "oom"
    args = ["leastaction", "run", "quickstart", "--set", "steps=100000000", "--out", str(out), "--quiet"]
    code = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30)); "
            f"sys.argv = {args!r}; runpy.run_module('experiments.cli', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 1, done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: quickstart failed: out of memory (RESOURCE_EXHAUSTED")
    assert "hint: smaller sizes" in line
    assert not out.exists() and os.listdir(tmp_path) == []
