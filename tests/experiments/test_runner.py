"""Experiment folders: contents, provenance, reproducibility, all-or-nothing runs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from experiments import CATALOG, read_config, run
from experiments.manifest import PACKAGES
from experiments.runner import default_output_dir, jsonable

from .conftest import assert_results_close

EXPECTED_FILES = {
    "config.toml",
    "manifest.json",
    "results.json",
    "log.txt",
    "figures/phase_space.png",
    "figures/phase_space.pdf",
    "tables/gradient_check.md",
    "tables/gradient_check.tex",
}


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.smoke
def test_quickstart_writes_every_file(quickstart_folder):
    folder = quickstart_folder
    assert _files(folder) == EXPECTED_FILES
    assert not any(folder.parent.glob("*.tmp-*"))


def test_config_is_the_resolved_config(quickstart_folder):
    folder = quickstart_folder
    with open(folder / "config.toml", "rb") as handle:
        document = tomllib.load(handle)
    assert document["experiment"] == "quickstart"
    assert document["config"] == {
        "seed": 0, "dim": 2, "steps": 6, "t_final": 1.5, "batch": 4, "scale": 2.0, "method": "euler",
    }
    assert read_config(folder) == ("quickstart", document["config"])


@pytest.mark.smoke
def test_manifest_records_provenance_and_hashes(quickstart_folder):
    folder = quickstart_folder
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["experiment"] == "quickstart"
    assert manifest["seed"] == 0
    assert set(manifest["versions"]) == set(PACKAGES)
    assert manifest["versions"]["jax"]
    for key in ("python", "platform", "machine", "processor", "python_executable"):
        assert manifest["platform"][key]
    import os
    import platform

    assert manifest["platform"]["python"] == platform.python_version()
    assert manifest["platform"]["cpu"]["logical_cores"] == os.cpu_count()
    assert manifest["platform"]["cpu"]["model"]
    assert manifest["versions"]["optax"] and manifest["versions"]["dask"]
    assert manifest["cpu_time_seconds"] > 0
    assert manifest["wall_time_seconds"] > 0
    start = datetime.fromisoformat(manifest["start_utc"])
    end = datetime.fromisoformat(manifest["end_utc"])
    assert start.tzinfo is not None and start <= end
    assert set(manifest["git"]) == {"commit", "dirty"}
    assert set(manifest["files"]) == EXPECTED_FILES - {"manifest.json"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    source = manifest["source"]
    assert source["version"] and source["files"] > 50 and len(source["sha256"]) == 64


@pytest.mark.slow  # copies the packages and imports them in a fresh interpreter (about 7 s on one core);
# the recorded version and source fingerprint are checked in the default suite by the manifest test
def test_source_state_identifies_the_code_without_git(tmp_path):
    """Copied out of the checkout (as `pip install .` copies it into site-packages), the code
    has no git commit, but its version and source fingerprint are recorded, equal to the
    checkout's; changing one line changes the fingerprint."""
    import shutil
    import subprocess
    import sys

    from experiments import manifest as provenance

    checkout = Path(provenance.__file__).resolve().parents[1]
    for package in provenance.SOURCE_PACKAGES:
        shutil.copytree(checkout / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    code = "import json, experiments.manifest as m, pathlib; " \
           "print(json.dumps([m.git_state(pathlib.Path(m.__file__).parent), m.source_state()]))"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=True)
    git, source = json.loads(done.stdout)
    assert git == {"commit": None, "dirty": None}
    assert source["root"] == str(tmp_path) and source["version"]
    here = provenance.source_state(checkout)
    assert (source["sha256"], source["files"]) == (here["sha256"], here["files"])
    with open(tmp_path / "lagrangian" / "__init__.py", "a") as handle:
        handle.write("\n# edited\n")
    assert provenance.source_state(tmp_path)["sha256"] != here["sha256"]


@pytest.mark.smoke
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_run_folders_honour_the_umask(tmp_path, umask):
    from dataclasses import dataclass

    from experiments import Experiment

    @dataclass(frozen=True)
    class Config:
        seed: int = 0

    def write(config, folder, progress):
        (folder.path / "tables").mkdir()
        (folder.path / "tables" / "t.md").write_text("x")
        return {"x": 1.0}

    old = os.umask(umask)
    try:
        record = run(Experiment("umask", "modes", Config(), write), out=tmp_path / "new" / "folder")
    finally:
        os.umask(old)
    for path in (tmp_path / "new", record.folder, record.folder / "tables"):
        assert path.stat().st_mode & 0o777 == 0o777 & ~umask, path
    for path in (record.folder / "results.json", record.folder / "tables" / "t.md"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_results_gradient_is_exact(quickstart_folder):
    folder = quickstart_folder
    results = json.loads((folder / "results.json").read_text())
    gradient = results["gradient"]
    assert gradient["relative_l2_error"] <= 1e-12
    assert gradient["max_abs_error"] <= 1e-12
    assert abs(gradient["cosine_similarity"] - 1) <= 1e-12
    assert abs(gradient["norm_ratio"] - 1) <= 1e-12
    assert set(gradient["per_leaf"]) == {"W", "b"}
    assert results["bilinear_invariant"]["max_relative_deviation"] <= 1e-12
    assert results["bilinear_invariant"]["relative_error_vs_jvp"] <= 1e-12
    assert results["stationarity"]["max_residual"] <= 1e-12
    assert math.isfinite(results["energy"]["max_relative_deviation"])


def test_tables_are_markdown_and_booktabs(quickstart_folder):
    folder = quickstart_folder
    md = (folder / "tables/gradient_check.md").read_text()
    tex = (folder / "tables/gradient_check.tex").read_text()
    assert "| parameter |" in md and "| total |" in md
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert tex.count(rule) == 1
    assert "W &" in tex and "total &" in tex


def test_log_records_the_steps(quickstart_folder):
    folder = quickstart_folder
    log = (folder / "log.txt").read_text()
    assert "experiment quickstart" in log
    assert "step 1/6" in log and "finished in" in log


@pytest.mark.slow  # one more quickstart run (about 7 s on one core); the Python API `run` with
# overrides runs in the default suite in test_catalogue.py
def test_api_run_takes_typed_overrides_from_config_toml(quickstart_folder, tmp_path):
    folder = quickstart_folder
    _, values = read_config(folder)
    record = run(CATALOG["quickstart"], values, out=tmp_path / "api")
    assert record.folder == (tmp_path / "api").absolute()
    assert record.config == dataclasses.replace(CATALOG["quickstart"].config, steps=6, batch=4, t_final=1.5)
    first = json.loads((folder / "results.json").read_text())
    assert_results_close(first, record.results)


@pytest.mark.smoke
@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_interrupted_run_leaves_nothing_and_keeps_the_old_folder(tmp_path, error):
    def interrupted(config, folder, progress):
        (folder.path / "figures").mkdir()
        (folder.path / "figures" / "half.png").write_bytes(b"not an image")
        raise error("stop")

    experiment = dataclasses.replace(CATALOG["quickstart"], run=interrupted)
    out = tmp_path / "run"
    with pytest.raises(error):
        run(experiment, out=out)
    assert os.listdir(tmp_path) == []

    out.mkdir()
    (out / "old.txt").write_text("previous run")
    with pytest.raises(error):
        run(experiment, out=out, force=True)
    assert sorted(os.listdir(tmp_path)) == ["run"]
    assert os.listdir(out) == ["old.txt"]


def test_validation_happens_before_any_folder_exists(tmp_path):
    with pytest.raises(ValueError, match="'batch'"):
        run(CATALOG["quickstart"], {"batch": "many"}, out=tmp_path / "a" / "b")
    assert os.listdir(tmp_path) == []


def test_default_output_dir_is_timestamped_and_unique(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    first = default_output_dir("quickstart", now)
    assert first == Path("runs/quickstart-20260102-030405")
    first.mkdir(parents=True)
    assert default_output_dir("quickstart", now) == Path("runs/quickstart-20260102-030405-2")


def test_jsonable_converts_arrays_and_reports_non_finite():
    import numpy as np

    warnings = []
    out = jsonable({"a": np.float64(1.5), "b": np.arange(3), "c": float("nan"), "d": np.int32(4)},
                   warn=warnings.append)
    assert out == {"a": 1.5, "b": [0, 1, 2], "c": None, "d": 4}
    assert warnings == ["results.c is nan; written as null"]
    json.dumps(out, allow_nan=False)
