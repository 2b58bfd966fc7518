"""`leastaction reproduce` and `leastaction verify` on quickstart folders, and run determinism.

Every `verify` and `reproduce` re-runs quickstart (about 7 s on one core, most of it drawing the
figures). The default suite keeps verify passing and agreeing to 1e-12 with its re-run, verify's
file and value mismatches, a folder without a manifest, and reproduce from a copied folder; the
other re-runs are `slow`."""

from __future__ import annotations

import json
import shutil
import tomllib

import pytest

from experiments import CATALOG
from experiments import folders
from experiments import runner
from experiments.cli import app
from experiments.manifest import file_hashes
from experiments.runner import read_tolerances
from experiments.tolerances import compare_results, Tolerances

from .conftest import SMALL


def _results(folder):
    return json.loads((folder / "results.json").read_text())


def test_config_toml_states_the_verify_tolerances(quickstart_folder):
    with open(quickstart_folder / "config.toml", "rb") as handle:
        document = tomllib.load(handle)
    experiment = CATALOG["quickstart"]
    assert document["verify"] == {"rtol": experiment.verify_rtol, "atol": experiment.verify_atol, "volatile": []}
    assert read_tolerances(quickstart_folder) == experiment.tolerances


def test_verify_passes_and_two_runs_agree_to_1e_12(quickstart_folder, cli, tmp_path):
    """verify passes on a fresh folder; its re-run (kept with --keep) has the same
    results.json to 1e-12, relative and absolute (determinism). Timings would be
    excluded and listed; quickstart's results have none."""
    kept = tmp_path / "rerun"
    result = cli.invoke(app, ["verify", str(quickstart_folder), "--keep", str(kept)])
    assert result.exit_code == 0, result.output
    assert f"verified {quickstart_folder}" in result.output
    assert "values match within rtol 1e-09, atol 1e-12" in result.output
    determinism = compare_results(_results(quickstart_folder), _results(kept), Tolerances(rtol=1e-12, atol=1e-12))
    assert determinism.ok, determinism.differences
    assert determinism.checked > 20 and determinism.excluded == ()
    manifest = json.loads((kept / "manifest.json").read_text())
    assert manifest["reproduces"] == str(quickstart_folder)
    # the manifest's wall time is volatile: any value passes
    assert compare_results({"wall_time_seconds": 1.0}, {"wall_time_seconds": manifest["wall_time_seconds"]}).ok


def test_reproduce_from_a_copied_folder(quickstart_folder, cli, tmp_path):
    """A folder copied elsewhere (no link to where it ran) re-runs from its config.toml alone."""
    copy = tmp_path / "elsewhere" / "copied"
    shutil.copytree(quickstart_folder, copy)
    out = tmp_path / "reproduced"
    result = cli.invoke(app, ["reproduce", str(copy), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert (out / "config.toml").read_bytes() == (quickstart_folder / "config.toml").read_bytes()
    assert compare_results(_results(quickstart_folder), _results(out), Tolerances(rtol=1e-12, atol=1e-12)).ok
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["reproduces"] == str(copy)


def _rehash(folder):
    """Record the folder's current files in its manifest (as if the run had written them)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = file_hashes(folder)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.smoke
def test_verify_checks_every_file_against_the_manifest(quickstart_folder, cli, tmp_path):
    """A tampered PNG, a deleted table and an extra file: each is named, verify exits 1,
    although every number of results.json still matches the re-run."""
    tampered = tmp_path / "tampered"
    shutil.copytree(quickstart_folder, tampered)
    with open(tampered / "figures" / "phase_space.png", "ab") as handle:
        handle.write(b"x")
    (tampered / "tables" / "gradient_check.md").unlink()
    (tampered / "figures" / "notes.txt").write_text("not written by the run")
    result = cli.invoke(app, ["verify", str(tampered)])
    assert result.exit_code == 1, result.output
    assert "figures/phase_space.png" in result.output and "changed: SHA-256 differs" in result.output
    assert "tables/gradient_check.md" in result.output and "missing: listed in manifest.json" in result.output
    assert "figures/notes.txt" in result.output and "extra: in the folder" in result.output
    assert "MISMATCH: 3 file(s)" in result.output
    assert "values of" not in result.output  # the numbers themselves match
    assert "Traceback" not in result.output


@pytest.mark.parametrize("damage", ["no manifest", pytest.param("manifest without files", marks=pytest.mark.slow)])
def test_verify_without_a_usable_manifest_fails(quickstart_folder, cli, tmp_path, damage):
    folder = tmp_path / "bare"
    shutil.copytree(quickstart_folder, folder)
    if damage == "no manifest":
        (folder / "manifest.json").unlink()
    else:
        (folder / "manifest.json").write_text('{"experiment": "quickstart"}')
    result = cli.invoke(app, ["verify", str(folder)])
    assert result.exit_code == 1, result.output
    assert "manifest.json" in result.output and ("no manifest.json" in result.output or "no `files`" in result.output)


@pytest.mark.slow  # two verify re-runs
def test_verify_compares_figures_and_tables_with_the_re_run(quickstart_folder, tmp_path):
    """quickstart's numbers re-run bit for bit, so its figures and tables are compared byte for byte:
    a figure whose manifest records its altered bytes (so the hash check passes) still fails."""
    altered = tmp_path / "altered"
    shutil.copytree(quickstart_folder, altered)
    good = folders.verify(altered)
    assert good.ok and good.files.rerun_compared == 4 and good.files.rerun_skipped is None
    with open(altered / "figures" / "phase_space.pdf", "ab") as handle:
        handle.write(b"%")
    _rehash(altered)
    outcome = folders.verify(altered)
    assert outcome.files.checked == 7 and not (outcome.files.changed or outcome.files.missing)
    assert outcome.files.rerun_differs == ("figures/phase_space.pdf",)
    assert outcome.comparison.ok and not outcome.ok


def test_verify_on_an_edited_results_file_fails_with_a_diff(quickstart_folder, cli, tmp_path):
    edited = tmp_path / "edited"
    shutil.copytree(quickstart_folder, edited)
    results = _results(edited)
    original = results["loss"]
    results["loss"] = original * (1 + 1e-6)
    results["stationarity"]["max_abs_p"] += 1.0
    (edited / "results.json").write_text(json.dumps(results))
    result = cli.invoke(app, ["verify", str(edited)])
    assert result.exit_code == 1, result.output
    assert "MISMATCH: 2 of" in result.output
    assert "results.json" in result.output and "changed: SHA-256 differs" in result.output
    assert "loss" in result.output and "stationarity.max_abs_p" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow  # a verify re-run
def test_verify_uses_the_tolerances_stored_in_the_folder(quickstart_folder, cli, tmp_path):
    """Loosening rtol in the folder's [verify] table makes a small edit pass."""
    edited = tmp_path / "loose"
    shutil.copytree(quickstart_folder, edited)
    results = _results(edited)
    results["loss"] *= 1 + 1e-6
    (edited / "results.json").write_text(json.dumps(results))
    config = (edited / "config.toml").read_text().replace("rtol = 1e-09", "rtol = 1e-05")
    (edited / "config.toml").write_text(config)
    _rehash(edited)  # the manifest records the edited files: only the tolerance decides
    result = cli.invoke(app, ["verify", str(edited), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "within rtol 1e-05" in result.output


def test_verify_of_a_folder_without_config_is_a_clear_error(cli, tmp_path):
    result = cli.invoke(app, ["verify", str(tmp_path)])
    assert result.exit_code == 2
    assert "no config file" in result.output and "Traceback" not in result.output


def test_config_with_a_bad_key_is_refused_before_any_work(quickstart_folder, cli, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(quickstart_folder, broken)
    text = (broken / "config.toml").read_text().replace("steps = 6", "stpes = 6")
    (broken / "config.toml").write_text(text)
    result = cli.invoke(app, ["reproduce", str(broken), "--out", str(tmp_path / "never")])
    assert result.exit_code == 2
    assert "unknown config key 'stpes'" in result.output
    assert not (tmp_path / "never").exists()


@pytest.mark.slow  # a quickstart run
def test_run_from_a_config_file_with_set_on_top(quickstart_folder, cli, tmp_path):
    out = tmp_path / "from-file"
    result = cli.invoke(app, ["run", "quickstart", "--config", str(quickstart_folder / "config.toml"),
                              "--set", "seed=1", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    with open(out / "config.toml", "rb") as handle:
        config = tomllib.load(handle)["config"]
    assert config["steps"] == 6 and config["batch"] == 4 and config["seed"] == 1


@pytest.mark.slow  # a quickstart run
def test_quick_on_an_experiment_whose_defaults_are_small_runs_them(cli, tmp_path):
    """quickstart has no separate quick preset: --quick is accepted (a loop over every experiment
    with --quick works), says so, and runs the config it would run without it."""
    result = cli.invoke(app, ["run", "quickstart", "--quick", "--out", str(tmp_path / "q"), "--quiet", *SMALL])
    assert result.exit_code == 0, result.output
    assert "note: quickstart has no separate quick preset" in result.output
    with open(tmp_path / "q" / "config.toml", "rb") as handle:
        assert tomllib.load(handle)["config"]["steps"] == 6
