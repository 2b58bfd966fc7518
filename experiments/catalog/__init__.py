"""The catalogue: every experiment `leastaction run NAME` can run, by name.

One module per experiment, each defining `EXPERIMENT` (an `Experiment` with
its typed default config and its `run` function). What a module declares, and
what it gets for it:

- `config`: a frozen dataclass of `bool`/`int`/`float`/`str` defaults (they fix
  each key's type; `__post_init__` raises a `ValueError` naming a bad key), with
  a `seed` and a `quick: bool` field whose preset runs in under a minute
  (`leastaction run NAME --quick`, the test suite). A preset that replaces
  sizes should refuse them being set as well (`experiments.config.check_quick`).
- `run(config, folder, progress) -> results`: every number the figures and
  tables show; figures through `folder.save_figure`, tables through
  `folder.save_table`; `progress(done, total, text)` drives the progress bar.
- `verify` (re-run and compare `results.json`) needs nothing more: timings and
  memory go under keys containing "time", "seconds", "memory", "bytes",
  "timestamp" or "wall", which it leaves out. Other machine-dependent numbers
  (a time ratio, say) are named in `volatile=(...)` (shell patterns on the
  key name or the dotted path without list indices). `verify_rtol`,
  `verify_atol` (defaults 1e-9, 1e-12) go into each folder's `[verify]` table.
- `sweep` needs nothing more; `headline=(...)` (dotted results keys) are the
  summary table's columns.
- `figures={"name under figures/": "stem the run saves"}` and optionally
  `figures_config={...}` register README figures for `leastaction figures`;
  `readme_tables={"block": "stem of tables/"}` registers a README table (the lines
  between `<!-- block -->` and `<!-- /block -->` of README.md), remade by the same run.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..runner import Experiment


def _discover() -> dict[str, Experiment]:
    """Every `EXPERIMENT` defined by a module of this package, by its name."""
    found: dict[str, Experiment] = {}
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        experiment = getattr(importlib.import_module(f"{__name__}.{module}"), "EXPERIMENT", None)
        if experiment is None:
            continue
        if experiment.name in found:
            raise RuntimeError(f"two catalogue modules define the experiment {experiment.name!r}")
        found[experiment.name] = experiment
    return found


CATALOG: dict[str, Experiment] = _discover()
"""Every experiment of the catalogue, by name (`leastaction list`); built by importing each module of
`experiments/catalog/` that defines `EXPERIMENT`."""


def get(name: str) -> Experiment:
    """The experiment called `name`; a `ValueError` listing the valid names otherwise.

    Example:
        >>> experiments.get("quickstart").name
        'quickstart'
        >>> experiments.get("no-such-experiment")
        Traceback (most recent call last):
        ValueError: unknown experiment 'no-such-experiment'; valid names: ...
    """
    try:
        return CATALOG[name]
    except KeyError:
        raise ValueError(
            f"unknown experiment {name!r}; valid names: {', '.join(sorted(CATALOG))}"
        ) from None


__all__ = ["CATALOG", "get"]
