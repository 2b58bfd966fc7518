"""Tutorial 3: run, read and verify an experiment folder from Python.

Runs the `galley-tension` experiment (the beta sweep of the doubled action) with its quick
preset into a folder, lists what the folder holds, reads `results.json`, verifies the folder by
re-running it from its `config.toml`, and copies the figure the run made into the docs.

Run from the top of the repository:  python docs/tutorials/experiments_from_python.py
It writes docs/tutorials/figures/experiments_from_python.png.
"""

import json
import shutil
import tempfile
from pathlib import Path

import experiments  # turns on float64 in JAX
from experiments import CATALOG

FIGURE = Path(__file__).parent / "figures" / "experiments_from_python.png"

experiment = CATALOG["galley-tension"]
print(experiment.name, "-", experiment.description)
print("default config:", experiment.config)

with tempfile.TemporaryDirectory() as tmp:
    # --- run: the same as `leastaction run galley-tension --quick --out DIR` -------------
    record = experiments.run(experiment, {"quick": True}, out=Path(tmp) / "galley")
    folder = record.folder
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            print("  ", path.relative_to(folder))

    # --- read: every number the figures and tables show is in results.json --------------
    results = json.loads((folder / "results.json").read_text())
    assert results == record.results
    for key, value in record.headline(experiment.headline):
        print(f"  {key} = {value}")
    manifest = record.manifest
    print("  git commit:", manifest.get("git", {}).get("commit") if isinstance(manifest.get("git"), dict) else "-")

    # --- verify: `leastaction verify DIR` re-runs config.toml and compares every number -
    verification = experiments.verify(folder)
    comparison = verification.comparison
    print(f"verify: ok={verification.ok}, {comparison.checked} numbers checked, "
          f"max relative difference {comparison.max_rel_diff:.1e}, excluded {len(comparison.excluded)} timing keys")
    assert verification.ok

    # --- the run's own figure, shown on the tutorial page --------------------------------
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "figures" / f"{experiment.figures['galley_tension_error_vs_beta']}.png", FIGURE)
    print("wrote", FIGURE)
