"""The catalogue: every experiment `leastaction run NAME` can run, by name.

One module per experiment, each defining `EXPERIMENT` (an `Experiment` with
its typed default config and its `run` function).
"""

from __future__ import annotations

from ..runner import Experiment
from . import benchmark_gradients, compare, quickstart

CATALOG: dict[str, Experiment] = {
    e.name: e for e in (quickstart.EXPERIMENT, compare.EXPERIMENT, benchmark_gradients.BENCHMARK_GRADIENTS)
}


def get(name: str) -> Experiment:
    """The experiment called `name`; a `ValueError` listing the valid names otherwise."""
    try:
        return CATALOG[name]
    except KeyError:
        raise ValueError(
            f"unknown experiment {name!r}; valid names: {', '.join(sorted(CATALOG))}"
        ) from None


__all__ = ["CATALOG", "get"]
