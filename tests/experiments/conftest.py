"""Fixtures for the experiments tests: a CLI runner and one small quickstart run."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

SMALL = ["--set", "steps=6", "--set", "batch=4", "--set", "t_final=1.5"]
"""A quickstart small enough to run in a few seconds."""


@pytest.fixture(scope="session")
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="session")
def quickstart_folder(tmp_path_factory, cli):
    """One small quickstart run through the CLI, shared by the read-only tests."""
    from experiments.cli import app

    out = tmp_path_factory.mktemp("runs") / "quickstart"
    result = cli.invoke(app, ["run", "quickstart", "--out", str(out), *SMALL])
    assert result.exit_code == 0, result.output
    return out
