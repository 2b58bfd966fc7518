"""The catalogue: every experiment `leastaction run NAME` can run, by name.

One module per experiment, each defining `EXPERIMENT` (an `Experiment` with
its typed default config and its `run` function).
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


def get(name: str) -> Experiment:
    """The experiment called `name`; a `ValueError` listing the valid names otherwise."""
    try:
        return CATALOG[name]
    except KeyError:
        raise ValueError(
            f"unknown experiment {name!r}; valid names: {', '.join(sorted(CATALOG))}"
        ) from None


__all__ = ["CATALOG", "get"]
