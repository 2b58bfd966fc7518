"""The figures under `figures/` and the tables of README.md, and how to remake them.

Each experiment declares the README figures it makes (`Experiment.figures`,
`{stem under figures/: stem in the run's figures/}`), the README tables it makes
(`Experiment.readme_tables`, `{block name: stem in the run's tables/}`) and the
config overrides of the run that makes them (`Experiment.figures_config`).
`regenerate` runs each such experiment afresh, copies the named figures (every
format the run wrote, PNG and PDF) into `figures/`, and rewrites each table's
block of README.md, the lines between `<!-- NAME -->` and `<!-- /NAME -->`,
with the run's Markdown table (`rewrite_block`); the rest of the README is
left as it is, byte for byte.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .runner import FIGURES, TABLES, Experiment, Progress, no_progress, run


@dataclass(frozen=True)
class FigureSource:
    """`figures/<target>.*` comes from `<run>/figures/<stem>.*` of `experiment` run with `overrides`."""

    experiment: str
    target: str
    stem: str
    overrides: Mapping[str, Any]


def registry(catalog: Mapping[str, Experiment] | None = None) -> list[FigureSource]:
    """Every README figure the catalogue declares, sorted by experiment and target."""
    if catalog is None:
        from .catalog import CATALOG as catalog
    sources = [FigureSource(name, target, stem, dict(e.figures_config))
               for name, e in sorted(catalog.items()) for target, stem in sorted(e.figures.items())]
    seen: dict[str, str] = {}
    for s in sources:
        if s.target in seen:
            raise ValueError(f"figures/{s.target} is declared by both {seen[s.target]!r} and {s.experiment!r}")
        seen[s.target] = s.experiment
    return sources


def rewrite_block(text: str, name: str, content: str) -> str:
    """`text` with everything between the lines `<!-- name -->` and `<!-- /name -->` replaced
    by `content` (the markers kept; a `ValueError` unless each appears once, in that order).

    Example:
        >>> from experiments.readme_figures import rewrite_block
        >>> rewrite_block("intro\n<!-- t -->\nold\n<!-- /t -->\nend\n", "t", "| new |\n")
        'intro\n<!-- t -->\n| new |\n<!-- /t -->\nend\n'
    """
    start, end = f"<!-- {name} -->\n", f"<!-- /{name} -->"
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"README needs one block `<!-- {name} -->` ... `<!-- /{name} -->` (in that order) to "
                         "hold the table")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}{content.rstrip()}\n{end}{tail}"


def write_readme_tables(readme: Path | str, experiment: Experiment, folder: Path | str) -> Path:
    """Rewrite every README block `experiment` declares (`readme_tables`) with the Markdown
    table of the run in `folder` (`tables/STEM.md`); returns the README's path."""
    readme, folder = Path(readme), Path(folder)
    text = readme.read_text(encoding="utf-8")
    for name, stem in sorted(experiment.readme_tables.items()):
        table = folder / TABLES / f"{stem}.md"
        if not table.is_file():
            raise ValueError(f"{experiment.name} did not write tables/{stem}.md (declared for the README block "
                             f"{name!r})")
        text = rewrite_block(text, name, table.read_text(encoding="utf-8"))
    tmp = readme.with_name(f".{readme.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, readme)
    return readme


def regenerate(
    directory: Path | str = "figures",
    only: Iterable[str] | None = None,
    quick: bool = False,
    runs: Path | str | None = None,
    catalog: Mapping[str, Experiment] | None = None,
    progress: Progress = no_progress,
    readme: Path | str = "README.md",
) -> list[Path]:
    """Re-run every experiment with README figures or tables (or those in `only`), copy its
    figures into `directory` and rewrite its tables' blocks of `readme`. With `quick`,
    experiments that have a `quick` preset run it (for checking the pipeline, not for the
    README). The runs go to `runs/NAME` if `runs` is given, else to a temporary folder.
    Returns the files written."""
    if catalog is None:
        from .catalog import CATALOG as catalog
    sources = registry(catalog)
    names = sorted({s.experiment for s in sources} | {n for n, e in catalog.items() if e.readme_tables})
    if only is not None:
        only = list(only)
        unknown = [n for n in only if n not in catalog]
        if unknown:
            raise ValueError(f"unknown experiment {unknown[0]!r}; valid names: {', '.join(sorted(catalog))}")
        without = [n for n in only if n not in names]
        if without:
            raise ValueError(f"experiment {without[0]!r} makes no README figure or table; those that do: "
                             f"{', '.join(names)}")
        names = [n for n in names if n in only]
    plans = []
    for name in names:
        experiment = catalog[name]
        overrides = dict(experiment.figures_config)
        if quick and experiment.has_quick:
            overrides["quick"] = True
        experiment.resolve(overrides)
        plans.append((experiment, overrides))
    blocks = [name for experiment, _ in plans for name in experiment.readme_tables]
    if blocks:
        text = Path(readme).read_text(encoding="utf-8")
        for name in blocks:  # a missing block is an error before anything runs
            rewrite_block(text, name, "")
    directory = Path(directory)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="leastaction-figures-") as scratch:
        root = Path(runs) if runs is not None else Path(scratch)
        for i, (experiment, overrides) in enumerate(plans):
            progress(i, len(plans), f"running {experiment.name}")
            record = run(experiment, overrides, out=root / experiment.name, force=runs is not None)
            directory.mkdir(parents=True, exist_ok=True)
            for source in (s for s in sources if s.experiment == experiment.name):
                files = sorted((record.folder / FIGURES).glob(f"{source.stem}.*"))
                if not files:
                    raise ValueError(f"{experiment.name} did not write figures/{source.stem}.* "
                                     f"(declared for figures/{source.target})")
                for file in files:
                    target = directory / f"{source.target}{file.suffix}"
                    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
                    shutil.copyfile(file, tmp)
                    os.replace(tmp, target)
                    written.append(target)
            if experiment.readme_tables:
                written.append(write_readme_tables(readme, experiment, record.folder))
        progress(len(plans), len(plans), "done")
    return written


__all__ = ["FigureSource", "regenerate", "registry", "rewrite_block", "write_readme_tables"]
