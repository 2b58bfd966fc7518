"""What users run: experiments, the folders they write, their figures and tables.

Importing this package turns on float64 in JAX (`jax_enable_x64`): every
experiment measures gradient errors at double precision.

    from experiments import CATALOG, run
    record = run(CATALOG["quickstart"], {"steps": 20}, out="runs/qs")
    record.results["gradient"]["relative_l2_error"]
    experiments.verify(record.folder).ok   # files against manifest.json; re-run, compare within [verify]
    experiments.sweep.run_sweep(CATALOG["quickstart"], {"steps": [10, 20]})   # on a Dask LocalCluster
"""

import jax

jax.config.update("jax_enable_x64", True)

from . import plots  # noqa: E402
from .catalog import CATALOG, get  # noqa: E402
from .folders import FileCheck, Verification, check_files, load_folder, reproduce, verify  # noqa: E402
from .runner import (  # noqa: E402
    Experiment,
    Progress,
    RunFolder,
    RunRecord,
    default_output_dir,
    read_config,
    read_tolerances,
    run,
)
from .tables import Table  # noqa: E402
from .tolerances import ResultsComparison, Tolerances, compare_results  # noqa: E402

__all__ = [
    "CATALOG", "ResultsComparison", "Experiment", "FileCheck", "Progress", "RunFolder", "RunRecord", "Table",
    "Tolerances", "Verification", "check_files", "compare_results", "default_output_dir", "get", "load_folder", "plots", "read_config",
    "read_tolerances", "reproduce", "run", "verify",
]
