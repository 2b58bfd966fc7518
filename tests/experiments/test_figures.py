"""`leastaction figures`: the README figures, which experiment makes each, and their regeneration."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from experiments import CATALOG
from experiments.cli import app
from experiments.readme_figures import registry, regenerate

ROOT = Path(__file__).resolve().parents[2]


def test_every_figure_the_readme_shows_has_a_source():
    """Each `figures/NAME.png` the README embeds is declared by exactly one experiment."""
    shown = set(re.findall(r"!\[[^\]]*\]\(figures/([A-Za-z0-9_\-]+)\.png\)", (ROOT / "README.md").read_text()))
    declared = {s.target: s for s in registry()}
    assert len(shown) >= 2, "the README shows fewer than two figures"
    assert shown <= set(declared), shown - set(declared)
    for target in shown:
        assert (ROOT / "figures" / f"{target}.png").is_file(), target


def test_two_experiments_declaring_one_figure_is_an_error():
    twin = dataclasses.replace(CATALOG["quickstart"], name="twin")
    with pytest.raises(ValueError, match="declared by both"):
        registry({"quickstart": CATALOG["quickstart"], "twin": twin})


def test_figures_list(cli):
    result = cli.invoke(app, ["figures", "--list"])
    assert result.exit_code == 0, result.output
    for name in ("quickstart", "phase-portraits", "energy-drift", "benchmark-gradients"):
        assert name in result.output


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    slope: float = 1.0


def _toy_run(config, folder, progress):
    """A figure of a line of the configured slope (no JAX: the registry is what is tested)."""
    from experiments import plots

    fig, axes = plots.figure()
    axes[0].plot([0, 1], [0, config.slope])
    folder.save_figure(fig, "line")
    return {"slope": config.slope}


def test_regenerate_copies_the_fresh_figures(tmp_path):
    """The run's figure lands under the registered name, byte for byte, made with
    `figures_config`."""
    from experiments import Experiment

    toy = Experiment(name="toy", description="a line", config=ToyConfig(), run=_toy_run,
                     figures={"toy_line": "line"}, figures_config={"slope": 2.0})
    runs = tmp_path / "runs"
    written = regenerate(tmp_path / "figures", catalog={"toy": toy}, runs=runs)
    assert sorted(p.name for p in written) == ["toy_line.pdf", "toy_line.png"]
    for path in written:
        assert path.read_bytes() == (runs / "toy" / "figures" / f"line{path.suffix}").read_bytes()
    assert (runs / "toy" / "results.json").read_text().strip() == '{\n  "slope": 2.0\n}'


def test_unknown_or_figureless_experiment_is_refused(cli, tmp_path):
    result = cli.invoke(app, ["figures", "--only", "nope", "--dir", str(tmp_path / "f")])
    assert result.exit_code == 2 and "unknown experiment 'nope'" in result.output
    assert not (tmp_path / "f").exists()


# --- README tables -----------------------------------------------------------------------------


def test_rewrite_block_replaces_only_the_block():
    from experiments.readme_figures import rewrite_block

    text = "# title\n\nintro\n<!-- t -->\nold | table\nmore\n<!-- /t -->\n\ntail <!-- t2 -->\n"
    out = rewrite_block(text, "t", "| new |\n|---|\n")
    assert out == "# title\n\nintro\n<!-- t -->\n| new |\n|---|\n<!-- /t -->\n\ntail <!-- t2 -->\n"
    assert rewrite_block(out, "t", "| new |\n|---|\n") == out  # rewriting is idempotent
    for broken in ("no markers\n", "<!-- /t -->\n<!-- t -->\n", "<!-- t -->\n<!-- t -->\n<!-- /t -->\n"):
        with pytest.raises(ValueError, match="<!-- t -->"):
            rewrite_block(broken, "t", "x")


def _toy_table_run(config, folder, progress):
    from experiments import Table

    folder.save_table(Table(["slope", "2 x slope"], [[config.slope, 2 * config.slope]], caption="toy"), "numbers")
    return {"slope": config.slope}


def test_regenerate_rewrites_the_readme_block_and_nothing_else(tmp_path):
    """`leastaction figures` writes the run's Markdown table between the markers; every byte
    of the README outside the block stays as it was."""
    from experiments import Experiment

    toy = Experiment(name="toy", description="a table", config=ToyConfig(), run=_toy_table_run,
                     readme_tables={"toy-table": "numbers"}, figures_config={"slope": 3.0})
    before, after = "# Toy\n\nSome text | with a pipe.\n\n<!-- toy-table -->\n", "<!-- /toy-table -->\n\n## More\n"
    readme = tmp_path / "README.md"
    readme.write_text(before + "| stale | numbers |\n" + after)
    runs = tmp_path / "runs"
    written = regenerate(tmp_path / "figures", catalog={"toy": toy}, runs=runs, readme=readme)
    assert written == [readme]
    table = (runs / "toy" / "tables" / "numbers.md").read_text()
    assert "| 3 | 6 |" in table
    assert readme.read_text() == before + table + after


def test_a_missing_readme_block_is_an_error_before_anything_runs(tmp_path):
    from experiments import Experiment

    toy = Experiment(name="toy", description="a table", config=ToyConfig(), run=_toy_table_run,
                     readme_tables={"toy-table": "numbers"})
    readme = tmp_path / "README.md"
    readme.write_text("# no block here\n")
    with pytest.raises(ValueError, match="toy-table"):
        regenerate(tmp_path / "figures", catalog={"toy": toy}, runs=tmp_path / "runs", readme=readme)
    assert not (tmp_path / "runs").exists() and readme.read_text() == "# no block here\n"


def test_the_readme_performance_table_is_the_benchmark_s_table():
    """The README's performance block holds the table benchmark-gradients writes (its caption
    and its header), not numbers typed by hand."""
    from experiments.catalog.benchmark_gradients import BENCHMARK_GRADIENTS, ROWS

    assert BENCHMARK_GRADIENTS.readme_tables == {"benchmark-gradients": "ratios"}
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- benchmark-gradients -->\n")[1].split("<!-- /benchmark-gradients -->")[0]
    assert block.startswith("**Gradient time / jax.grad through lax.scan of the same discrete map")
    assert "| d | N | state | dtype | jax.grad CPU ms | " + " | ".join(
        row.label for row in ROWS if row.family != "reference") + " |" in block


def test_every_readme_table_block_is_filled_from_a_run():
    """Every block an experiment declares (`readme_tables`) is in the README, once, and holds a
    Markdown table with the caption the experiment's table writer gives (not typed by hand)."""
    from experiments import CATALOG

    text = (ROOT / "README.md").read_text()
    declared = {name: experiment for experiment in CATALOG.values() for name in experiment.readme_tables}
    assert "train-neural-ode-memory" in declared
    for name in declared:
        assert text.count(f"<!-- {name} -->\n") == 1 and text.count(f"<!-- /{name} -->") == 1, name
        block = text.split(f"<!-- {name} -->\n")[1].split(f"<!-- /{name} -->")[0]
        assert block.startswith("**") and ("\n|:---|" in block or "\n|---:|" in block), name
    memory = text.split("<!-- train-neural-ode-memory -->\n")[1].split("<!-- /train-neural-ode-memory -->")[0]
    assert memory.startswith("**XLA temporary memory (MB) of one gradient of the neural-ODE loss (reversible-dopri5")
