"""The kl-directions experiment, run once with its quick preset through the runner."""

import json

import pytest

from experiments.catalog import get
from experiments.catalog.kl_directions import KLDirectionsConfig
from experiments.runner import run

# The quick run of this experiment takes 10-60 s of CPU; with the other catalogue runs
# it would push the default suite past its time budget, so it runs with `pytest -m slow`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "kl"
    return run(get("kl-directions"), {"quick": True}, out=out)


def test_quick_run_writes_results_figure_and_table(quick_run):
    folder = quick_run.folder
    for name in ("figures/kl_fits.png", "figures/kl_fits.pdf", "tables/kl_fits.md", "tables/kl_fits.tex"):
        assert (folder / name).is_file(), name
    results = json.loads((folder / "results.json").read_text())
    assert [(c["domain"], c["sigma_p"]) for c in results["cases"]] == [("unit", 0.08), ("real", 0.08)]
    summary = results["summary"]
    assert summary["forward_max_mean_error"] <= 1e-10
    assert summary["forward_max_variance_relative_error"] <= 1e-10
    assert summary["cross_entropy_derivative_max_relative_error"] <= 1e-14
    assert summary["identities_max_error"] <= 1e-8  # finite differences and SLSQP limit these
    assert (folder / "tables" / "kl_identities.md").is_file()
    for case in results["cases"]:
        assert case["reverse"]["start_dependent"]
        assert len(case["reverse"]["stationary_points"]) == 3
    unit, real = results["cases"]
    assert not unit["reverse"]["global_at_a_mode"]  # on [0, 1] the wide central fit wins (spec table)
    assert real["reverse"]["global_at_a_mode"]


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="domains"):
        KLDirectionsConfig(domains="unit,moon")
    with pytest.raises(ValueError, match="sigmas"):
        KLDirectionsConfig(sigmas="0.1,-2")
