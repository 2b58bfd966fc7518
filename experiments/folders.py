"""Run folders read back: `load_folder` (the experiment, config and tolerances of a folder),
`reproduce` (re-run it from its `config.toml`) and `verify` (every file against the hashes
its manifest records, and the values of a re-run against the recorded ones).

Kept apart from `experiments.runner`, which writes folders, because reading one needs the
catalogue (`experiments.catalog`), and the catalogue's experiments need the runner.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from . import config as configs
from . import manifest as provenance
from .catalog import get
from .runner import CONFIG, FIGURES, RESULTS, TABLES, Experiment, Progress, RunRecord, check_output_dir, no_progress, read_config, read_tolerances, run
from .tolerances import ResultsComparison, Tolerances, compare_results


def load_folder(folder: Path | str) -> tuple[Experiment, Any, Tolerances]:
    """`(experiment, resolved config, tolerances)` of a run folder, from its `config.toml`.

    Raises a `ValueError` (before any work) if the folder has no config, names an
    experiment the catalogue does not have, or holds a key or value the
    experiment's config rejects.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp())        # a config.toml as a run writes it
        >>> _ = (out / "config.toml").write_text(
        ...     'experiment = "quickstart"\\n[config]\\nsteps = 5\\nbatch = 2\\n[verify]\\nrtol = 1e-6\\n')
        >>> experiment, config, tolerances = experiments.load_folder(out)
        >>> experiment.name, config.steps, tolerances.rtol
        ('quickstart', 5, 1e-06)
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a run folder")
    name, values = read_config(folder)
    experiment = get(name)
    try:
        config = experiment.resolve(values)
    except ValueError as error:
        raise ValueError(f"{folder / CONFIG}: {error}") from None
    return experiment, config, read_tolerances(folder, experiment.tolerances)


def reproduce(
    folder: Path | str, out: Path | str | None = None, force: bool = False, progress: Progress = no_progress,
) -> RunRecord:
    """Re-run the experiment of `folder` from its `config.toml` into a new folder
    (`runs/NAME-TIMESTAMP` by default); the `[verify]` table is carried over.

    Example:
        >>> import tempfile, pathlib
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> first = experiments.run(experiments.CATALOG["quickstart"], {"steps": 5, "batch": 2}, out=tmp / "qs")
        >>> again = experiments.reproduce(tmp / "qs", out=tmp / "qs-again")
        >>> again.config == first.config, again.results["loss"] == first.results["loss"]
        (True, True)
    """
    folder = Path(os.path.abspath(folder))
    experiment, config, tolerances = load_folder(folder)
    return run(experiment, configs.as_dict(config), out=out, force=force, progress=progress,
               tolerances=tolerances, origin=str(folder))


@dataclass(frozen=True)
class FileCheck:
    """The files of a run folder checked against its `manifest.json` and against a re-run.

    Attributes:
        changed: files whose SHA-256 differs from the one the manifest records.
        missing: files the manifest lists that are not in the folder.
        extra: files in the folder that the manifest does not list.
        problem: why the files could not be checked at all (no or unreadable
            manifest), else `None`.
        rerun_differs: figures and tables whose bytes differ from the re-run's,
            among those compared with it (see `verify`).
        rerun_compared: how many figures and tables were compared with the re-run.
        rerun_skipped: why figures and tables were not compared with the re-run,
            else `None`.

    Example:
        >>> check = experiments.FileCheck(checked=3, changed=("figures/a.png",), extra=("notes.txt",))
        >>> check.ok, check.findings()[0]
        (False, ('figures/a.png', 'changed: SHA-256 differs from manifest.json'))
    """

    checked: int = 0
    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    problem: str | None = None
    rerun_differs: tuple[str, ...] = ()
    rerun_compared: int = 0
    rerun_skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and not (self.changed or self.missing or self.extra or self.rerun_differs)

    def findings(self) -> list[tuple[str, str]]:
        """`(file, what is wrong)` for every finding, in a fixed order."""
        found = [(provenance.MANIFEST, self.problem)] if self.problem else []
        found += [(name, "changed: SHA-256 differs from manifest.json") for name in self.changed]
        found += [(name, "missing: listed in manifest.json, not in the folder") for name in self.missing]
        found += [(name, "extra: in the folder, not listed in manifest.json") for name in self.extra]
        found += [(name, "differs from the re-run's (bit for bit)") for name in self.rerun_differs]
        return found


def check_files(folder: Path | str) -> FileCheck:
    """Every file of `folder` against the SHA-256 digests its `manifest.json` records:
    which changed, which are missing, which are extra (`manifest.json` itself is not hashed).

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "qs"
        >>> _ = experiments.run(experiments.CATALOG["quickstart"], {"steps": 5, "batch": 2}, out=out)
        >>> _ = (out / "notes.txt").write_text("mine")
        >>> (out / "tables" / "gradient_check.md").unlink()
        >>> check = experiments.check_files(out)
        >>> check.ok, check.missing, check.extra
        (False, ('tables/gradient_check.md',), ('notes.txt',))
    """
    folder = Path(folder)
    path = folder / provenance.MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return FileCheck(problem="missing: the folder has no manifest.json, so its files cannot be checked")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return FileCheck(problem=f"unreadable: {error}")
    recorded = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(recorded, dict) or not all(isinstance(v, str) for v in recorded.values()):
        return FileCheck(problem="has no `files` table of SHA-256 digests")
    present = provenance.file_hashes(folder)
    return FileCheck(
        checked=len(recorded),
        changed=tuple(sorted(n for n in recorded if n in present and present[n] != recorded[n])),
        missing=tuple(sorted(n for n in recorded if n not in present)),
        extra=tuple(sorted(n for n in present if n not in recorded)),
    )


def _compare_with_rerun(folder: Path, rerun: Path, check: FileCheck, comparison: ResultsComparison,
                        recorded_versions: Mapping[str, Any]) -> FileCheck:
    """Add the byte comparison of the folder's figures and tables with the re-run's.

    They are compared only where the re-run must reproduce them bit for bit: every
    compared number of `results.json` equal (not just within tolerance), no volatile
    number (a timing drawn in a figure changes it), and the same matplotlib."""
    import matplotlib

    if comparison.max_abs_diff != 0 or not comparison.ok:
        reason = "the re-run's numbers are not bit-for-bit equal to the recorded ones"
    elif comparison.excluded:
        reason = "the results hold volatile values (timings, memory) that figures and tables may show"
    elif recorded_versions.get("matplotlib") != matplotlib.__version__:
        reason = (f"recorded with matplotlib {recorded_versions.get('matplotlib')}, "
                  f"re-run with {matplotlib.__version__}")
    else:
        reason = None
    if reason is not None:
        return dataclasses.replace(check, rerun_skipped=reason)
    recorded = provenance.file_hashes(folder, exclude=())
    again = provenance.file_hashes(rerun, exclude=())
    already = set(check.changed) | set(check.extra)  # reported once, by the manifest check
    names = sorted(n for n in recorded if n.startswith((f"{FIGURES}/", f"{TABLES}/")) and n not in already)
    differs = tuple(n for n in names if again.get(n) != recorded[n])
    return dataclasses.replace(check, rerun_differs=differs, rerun_compared=len(names))


@dataclass(frozen=True)
class Verification:
    """`verify`'s answer: the file check, the comparison of numbers, and the re-run.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "qs"
        >>> experiments.run(experiments.CATALOG["quickstart"], {"steps": 5, "batch": 2}, out=out).folder.name
        'qs'
        >>> verification = experiments.verify(out)       # `leastaction verify DIR`
        >>> verification.ok, verification.comparison.checked > 10, verification.files.rerun_compared
        (True, True, 4)
    """

    folder: Path
    rerun: RunRecord
    comparison: ResultsComparison
    files: FileCheck = field(default_factory=FileCheck)

    @property
    def ok(self) -> bool:
        return self.comparison.ok and self.files.ok


def verify(
    folder: Path | str, keep: Path | str | None = None, progress: Progress = no_progress,
    tolerances: Tolerances | None = None,
) -> Verification:
    """Check `folder` against its manifest and a re-run.

    1. Every file against the SHA-256 its `manifest.json` records (`check_files`):
       a changed, missing or extra file fails verification.
    2. A re-run from its `config.toml`, every number of `results.json` compared
       with the re-run's within the `[verify]` tolerances (`experiments.tolerances`).
    3. Where the re-run's numbers are bit-for-bit the recorded ones (and no
       volatile value such as a timing is among them, and matplotlib is the
       version the manifest records), every figure and table compared byte for
       byte with the re-run's.

    The re-run goes to `keep` if given, else to a temporary folder that is
    deleted afterwards.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "qs"
        >>> record = experiments.run(experiments.CATALOG["quickstart"], {"steps": 5, "batch": 2}, out=out)
        >>> experiments.verify(out).ok                 # `leastaction verify DIR`
        True
    """
    folder = Path(os.path.abspath(folder))
    experiment, config, stored = load_folder(folder)
    tolerances = tolerances or stored
    try:
        expected = json.loads((folder / RESULTS).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{folder} has no {RESULTS}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{folder / RESULTS} is not valid JSON: {error}") from None
    files = check_files(folder)
    try:
        versions = json.loads((folder / provenance.MANIFEST).read_text(encoding="utf-8")).get("versions") or {}
    except (OSError, ValueError, AttributeError):
        versions = {}

    def rerun(out: Path) -> Verification:
        record = run(experiment, configs.as_dict(config), out=out, progress=progress, tolerances=tolerances,
                     origin=str(folder))
        comparison = compare_results(expected, record.results, tolerances)
        return Verification(folder, record, comparison,
                            _compare_with_rerun(folder, record.folder, files, comparison, versions))

    if keep is not None:
        check_output_dir(Path(os.path.abspath(keep)), force=False)
        return rerun(Path(keep))
    with tempfile.TemporaryDirectory(prefix="leastaction-verify-") as scratch:
        return rerun(Path(scratch) / folder.name)
