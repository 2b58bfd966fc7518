"""The figures under `figures/` that the README shows, and how to remake them.

Each experiment declares the README figures it makes (`Experiment.figures`,
`{stem under figures/: stem in the run's figures/}`) and the config overrides
of the run that makes them (`Experiment.figures_config`). `regenerate` runs
each such experiment afresh and copies the named figures (every format the
run wrote, PNG and PDF) into `figures/`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .runner import FIGURES, Experiment, Progress, no_progress, run


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


def regenerate(
    directory: Path | str = "figures",
    only: Iterable[str] | None = None,
    quick: bool = False,
    runs: Path | str | None = None,
    catalog: Mapping[str, Experiment] | None = None,
    progress: Progress = no_progress,
) -> list[Path]:
    """Re-run every experiment with README figures (or those in `only`) and copy its
    figures into `directory`. With `quick`, experiments that have a `quick` preset run
    it (for checking the pipeline, not for the README). The runs go to `runs/NAME`
    if `runs` is given, else to a temporary folder. Returns the files written."""
    if catalog is None:
        from .catalog import CATALOG as catalog
    sources = registry(catalog)
    names = sorted({s.experiment for s in sources})
    if only is not None:
        only = list(only)
        unknown = [n for n in only if n not in catalog]
        if unknown:
            raise ValueError(f"unknown experiment {unknown[0]!r}; valid names: {', '.join(sorted(catalog))}")
        without = [n for n in only if n not in names]
        if without:
            raise ValueError(f"experiment {without[0]!r} makes no README figure; those that do: {', '.join(names)}")
        names = [n for n in names if n in only]
    plans = []
    for name in names:
        experiment = catalog[name]
        overrides = dict(experiment.figures_config)
        if quick and experiment.has_quick:
            overrides["quick"] = True
        experiment.resolve(overrides)
        plans.append((experiment, overrides))
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
        progress(len(plans), len(plans), "done")
    return written


__all__ = ["FigureSource", "regenerate", "registry"]
