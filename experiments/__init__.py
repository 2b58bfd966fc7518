"""What users run: experiments, the folders they write, their figures and tables.

Importing this package turns on float64 in JAX (`jax_enable_x64`): every
experiment measures gradient errors at double precision.

    from experiments import CATALOG, run
    record = run(CATALOG["quickstart"], {"steps": 20}, out="runs/qs")
    record.results["gradient"]["relative_l2_error"]
"""

import jax

jax.config.update("jax_enable_x64", True)

from . import plots  # noqa: E402
from .catalog import CATALOG, get  # noqa: E402
from .runner import (  # noqa: E402
    Experiment,
    Progress,
    RunFolder,
    RunRecord,
    default_output_dir,
    read_config,
    run,
)
from .tables import Table  # noqa: E402

__all__ = [
    "CATALOG", "Experiment", "Progress", "RunFolder", "RunRecord", "Table", "default_output_dir",
    "get", "plots", "read_config", "run",
]
