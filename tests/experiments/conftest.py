"""Fixtures for the experiments tests: a CLI runner and one small quickstart run."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

SMALL = ["--set", "steps=6", "--set", "batch=4", "--set", "t_final=1.5"]
"""A quickstart small enough to run in a few seconds."""


@pytest.fixture(scope="session")
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory, cli):
    """One small quickstart run through the CLI, shared by the read-only tests:
    `(folder, what the command printed)`."""
    from experiments.cli import app

    out = tmp_path_factory.mktemp("runs") / "quickstart"
    result = cli.invoke(app, ["run", "quickstart", "--out", str(out), *SMALL])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="session")
def quickstart_folder(quickstart_run):
    """The folder of the shared small quickstart run."""
    return quickstart_run[0]


def assert_results_close(a, b, where="results", tol=1e-12):
    """Two results trees agree: same keys and lengths, floats within `tol`, the rest equal."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_results_close(a[k], b[k], f"{where}.{k}", tol)
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_results_close(x, y, f"{where}[{i}]", tol)
    elif isinstance(a, float):
        assert math.isclose(a, b, rel_tol=tol, abs_tol=tol), f"{where}: {a} != {b}"
    else:
        assert a == b, where

