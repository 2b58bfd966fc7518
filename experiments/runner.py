"""Experiment folders: an `Experiment` run from a resolved config into a folder
that holds everything needed to read, re-run and verify it (DESIGN.md 4).

    DIR/config.toml      the full resolved configuration and the experiment name
    DIR/manifest.json    versions, platform, git commit, seed, timings, SHA-256 of every file
    DIR/results.json     every number the figures and tables show
    DIR/figures/*.png|pdf
    DIR/tables/*.md|tex
    DIR/log.txt          what the run logged (progress steps, messages, warnings)

A run is all or nothing. The config is resolved and the output location
checked before any work; the folder is built in a temporary sibling
`DIR.tmp-XXXXXXXX` (with the permissions the umask gives any new folder) and renamed to `DIR` only once complete. On any exception,
`KeyboardInterrupt` included, the temporary folder (and any parent folder the
run created) is deleted, so a failed run leaves nothing behind. With `force`,
an existing `DIR` is replaced only after the new folder is complete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
import tomllib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tomli_w

from . import config as configs
from . import manifest as provenance
from .tables import Table
from .verify import DEFAULT_ATOL, DEFAULT_RTOL, Comparison, Tolerances, compare

CONFIG, RESULTS, LOG = "config.toml", "results.json", "log.txt"
FIGURES, TABLES = "figures", "tables"


class Progress(Protocol):
    """Told when an experiment finishes step `done` of `total` (`description` says which).

    Example:
        >>> def show(done, total, description):           # any callable with this signature is a Progress
        ...     print(f"{done}/{total} {description}")
        >>> show(1, 3, "forward pass")
        1/3 forward pass
    """

    def __call__(self, done: int, total: int, description: str) -> None: ...


def no_progress(done: int, total: int, description: str) -> None:
    """A `Progress` that shows nothing (the step is still written to `log.txt`)."""


class RunFolder:
    """What an experiment's `run` writes into: figures, tables and log lines.

    `path` is the folder being built (a temporary sibling of the final one).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class ToyConfig:
        ...     seed: int = 0
        ...     scale: float = 2.0
        >>> def run_toy(config, folder, progress):
        ...     folder.save_table(experiments.Table(["x", "2x"], [[config.scale, 2 * config.scale]]), "double")
        ...     return {"value": 2.0 * config.scale}
        >>> toy = experiments.Experiment("toy", "doubles scale", ToyConfig(), run_toy)
        >>> import tempfile, pathlib
        >>> record = experiments.run(toy, out=pathlib.Path(tempfile.mkdtemp()) / "toy")
        >>> sorted(p.name for p in (record.folder / "tables").iterdir())
        ['double.md', 'double.tex']
    """

    def __init__(self, path: Path, logger: logging.Logger):
        self.path = Path(path)
        self._logger = logger

    def log(self, message: str) -> None:
        """Append a line to `log.txt`."""
        self._logger.info(message)

    def save_figure(self, fig, stem: str) -> list[Path]:
        """Write `figures/stem.png` and `figures/stem.pdf` and close the figure."""
        from .plots import save_figure

        paths = save_figure(fig, self.path / FIGURES, stem)
        self.log(f"wrote {', '.join(p.relative_to(self.path).as_posix() for p in paths)}")
        return paths

    def save_table(self, table: Table, stem: str) -> list[Path]:
        """Write `tables/stem.md` and `tables/stem.tex` (booktabs)."""
        paths = table.save(self.path / TABLES, stem)
        self.log(f"wrote {', '.join(p.relative_to(self.path).as_posix() for p in paths)}")
        return paths


RunFunction = Callable[[Any, RunFolder, Progress], Mapping[str, Any]]


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: `run(config, folder, progress) -> results`.

    Attributes:
        name: the name used on the command line (`leastaction run NAME`).
        description: one line for `leastaction list`.
        config: the default configuration, a frozen dataclass whose defaults
            fix the type of each key.
        run: computes the results dict (JSON-able numbers) and writes figures
            and tables through the `RunFolder`; reports steps to `progress`.
        headline: dotted keys of `results` shown in the end-of-run summary
            (and as the columns of a sweep's summary table).
        volatile: results keys `verify` leaves out besides those whose name
            contains "time", "seconds", "memory", "bytes", "timestamp" or
            "wall": shell patterns matched against the key's last name or its
            dotted path without list indices (`experiments.verify`).
        verify_rtol, verify_atol: the tolerances `verify` uses, written into
            each folder's `config.toml` under `[verify]`.
        figures: the README figures this experiment makes,
            `{stem under figures/: stem of the run's figures/}`; `leastaction
            figures` regenerates them from a fresh run with `figures_config`.
        figures_config: the config overrides of that run.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class ToyConfig:
        ...     seed: int = 0
        ...     scale: float = 2.0
        >>> def run_toy(config, folder, progress):
        ...     folder.log("doubling")
        ...     return {"value": 2.0 * config.scale}
        >>> toy = experiments.Experiment("toy", "doubles scale", ToyConfig(), run_toy)
        >>> toy.resolve({"scale": "3"})                  # strings parsed with the default's type
        ToyConfig(seed=0, scale=3.0)
    """

    name: str
    description: str
    config: Any
    run: RunFunction
    headline: tuple[str, ...] = field(default=())
    volatile: tuple[str, ...] = field(default=())
    verify_rtol: float = DEFAULT_RTOL
    verify_atol: float = DEFAULT_ATOL
    figures: Mapping[str, str] = field(default_factory=dict)
    figures_config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not self.name or not all(ch.isalnum() or ch in "-_" for ch in self.name):
            raise ValueError(f"experiment names are non-empty [A-Za-z0-9_-]; got {self.name!r}")
        configs.check_defaults(self.config)
        self.tolerances  # validates the verify fields
        if self.figures:
            self.resolve(self.figures_config)

    @property
    def tolerances(self) -> Tolerances:
        """The default `[verify]` table of this experiment's folders."""
        return Tolerances(rtol=self.verify_rtol, atol=self.verify_atol, volatile=tuple(self.volatile))

    @property
    def has_quick(self) -> bool:
        """Whether the config has a `quick` preset switch (`--quick` sets it)."""
        return "quick" in configs.keys(self.config)

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> Any:
        """The default config with `overrides` applied (a `ValueError` naming any bad key)."""
        return configs.resolve(self.config, overrides or {}, experiment=self.name)


@dataclass(frozen=True)
class RunRecord:
    """What a completed run produced: its folder and the contents of its files.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class ToyConfig:
        ...     seed: int = 0
        ...     scale: float = 2.0
        >>> def run_toy(config, folder, progress):
        ...     folder.log("doubling")
        ...     return {"value": 2.0 * config.scale}
        >>> toy = experiments.Experiment("toy", "doubles scale", ToyConfig(), run_toy)
        >>> import tempfile, pathlib
        >>> record = experiments.run(toy, out=pathlib.Path(tempfile.mkdtemp()) / "toy")
        >>> record.config.scale, record.headline(["value"]), record.manifest["seed"]
        (2.0, [('value', 4.0)], 0)
    """

    folder: Path
    config: Any
    results: dict[str, Any]
    manifest: dict[str, Any]

    def headline(self, keys: Sequence[str]) -> list[tuple[str, Any]]:
        """`(key, value)` for each dotted key present in `results`."""
        found = []
        for key in keys:
            value: Any = self.results
            for part in key.split("."):
                if not isinstance(value, Mapping) or part not in value:
                    break
                value = value[part]
            else:
                found.append((key, value))
        return found


def default_output_dir(name: str, now: datetime | None = None, root: Path = Path("runs")) -> Path:
    """`runs/NAME-YYYYmmdd-HHMMSS` (UTC) under the current directory, made unique
    with a `-2`, `-3`... suffix if that folder already exists.

    Example:
        >>> from datetime import datetime
        >>> experiments.default_output_dir("quickstart", now=datetime(2026, 1, 2, 3, 4, 5), root=Path("/nonexistent"))
        PosixPath('/nonexistent/quickstart-20260102-030405')
    """
    stamp = (now or provenance.utc_now()).strftime("%Y%m%d-%H%M%S")
    candidate = root / f"{name}-{stamp}"
    n = 2
    while os.path.lexists(candidate):
        candidate = root / f"{name}-{stamp}-{n}"
        n += 1
    return candidate


def check_output_dir(out: Path, force: bool) -> None:
    """Raise a `ValueError` if a run could not (or must not) write `out`."""
    if os.path.lexists(out):
        if not force:
            raise ValueError(f"output folder {out} already exists; pass --force to overwrite")
        if out.is_symlink() or not out.is_dir():
            raise ValueError(f"output path {out} exists and is not a folder; refusing to replace it")
    ancestor = out.parent
    while not os.path.lexists(ancestor):
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"cannot create output folder {out}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"cannot create output folder {out}: {ancestor} is not writable")


def _umask() -> int:
    """The process's umask (read from `/proc/self/status` where it is, else set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _make_parents(parent: Path) -> list[Path]:
    """Create `parent` and missing ancestors; return the folders created (deepest last)."""
    missing = []
    folder = parent
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        os.mkdir(folder)
    return list(reversed(missing))


def _remove_empty(folders: Sequence[Path]) -> None:
    for folder in reversed(folders):
        try:
            os.rmdir(folder)
        except OSError:
            return


def jsonable(value: Any, where: str = "results", warn: Callable[[str], None] | None = None) -> Any:
    """`value` as plain JSON types: arrays to (nested) lists, numpy scalars to
    Python numbers; non-finite floats become `null` (reported through `warn`)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{where}.{k}", warn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]", warn) for i, v in enumerate(value)]
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if hasattr(value, "shape") or isinstance(value, (float, np.floating, np.bool_)):
        array = np.asarray(value)
        if array.ndim:
            return jsonable(array.tolist(), where, warn)
        item = array.item()
        if isinstance(item, float) and not math.isfinite(item):
            if warn:
                warn(f"{where} is {item}; written as null")
            return None
        return item
    raise TypeError(f"{where}: cannot write a {type(value).__name__} to results.json")


def write_config(path: Path, experiment: str, config: Any, tolerances: Tolerances | None = None) -> None:
    """`config.toml`: `experiment = NAME`, a `[config]` table of every key and the
    `[verify]` table (`rtol`, `atol`, `volatile`) saying how `verify` compares results."""
    document: dict[str, Any] = {"experiment": experiment, "config": configs.as_dict(config)}
    if tolerances is not None:
        document["verify"] = tolerances.as_dict()
    Path(path).write_text(tomli_w.dumps(document), encoding="utf-8")


def _config_document(path: Path) -> tuple[Path, dict[str, Any]]:
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG
    try:
        with open(path, "rb") as handle:
            return path, tomllib.load(handle)
    except FileNotFoundError:
        raise ValueError(f"no config file {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML: {error}") from None


def read_config(path: Path) -> tuple[str, dict[str, Any]]:
    """`(experiment name, {key: value})` from a `config.toml` written by a run
    (the file itself, or the run folder holding it).

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp())        # a config.toml as a run writes it
        >>> _ = (out / "config.toml").write_text(
        ...     'experiment = "quickstart"\\n[config]\\nsteps = 5\\nbatch = 2\\n[verify]\\nrtol = 1e-6\\n')
        >>> name, values = experiments.read_config(out)
        >>> name, values["steps"], values["batch"]
        ('quickstart', 5, 2)
    """
    path, document = _config_document(path)
    if not isinstance(document.get("experiment"), str) or not isinstance(document.get("config"), dict):
        raise ValueError(f"{path} is not a run config: expected `experiment = NAME` and a [config] table")
    return document["experiment"], dict(document["config"])


def read_tolerances(path: Path, default: Tolerances | None = None) -> Tolerances:
    """The `[verify]` table of a `config.toml` (or run folder); `default` where it is silent.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp())        # a config.toml as a run writes it
        >>> _ = (out / "config.toml").write_text(
        ...     'experiment = "quickstart"\\n[config]\\nsteps = 5\\nbatch = 2\\n[verify]\\nrtol = 1e-6\\n')
        >>> experiments.read_tolerances(out)                # atol: the default where the table is silent
        Tolerances(rtol=1e-06, atol=1e-12, volatile=())
    """
    path, document = _config_document(path)
    table = document.get("verify", {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [verify] must be a table")
    return Tolerances.from_dict(table, default)


def read_overrides(path: Path) -> tuple[str | None, dict[str, Any]]:
    """Config values from a TOML file for `run --config`: a run's `config.toml`
    (`experiment` and `[config]`), or a flat table of `key = value` (name `None`)."""
    path, document = _config_document(path)
    if "config" in document:
        if not isinstance(document["config"], dict):
            raise ValueError(f"{path}: [config] must be a table")
        name = document.get("experiment")
        return (name if isinstance(name, str) else None), dict(document["config"])
    nested = [k for k, v in document.items() if isinstance(v, dict)]
    if nested:
        raise ValueError(f"{path}: expected `key = value` lines or a [config] table; found the table [{nested[0]}]")
    return None, dict(document)


def _file_logger(path: Path) -> tuple[logging.Logger, logging.Handler]:
    logger = logging.getLogger(f"experiments.run.{uuid.uuid4().hex}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(path, encoding="utf-8")
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)-7s %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    return logger, handler


def run(
    experiment: Experiment,
    overrides: Mapping[str, Any] | None = None,
    out: Path | str | None = None,
    force: bool = False,
    progress: Progress = no_progress,
    tolerances: Tolerances | None = None,
    origin: str | None = None,
) -> RunRecord:
    """Run `experiment` with `overrides` into the folder `out` (all or nothing).

    Args:
        experiment: the registered experiment.
        overrides: `{key: value}`; strings are parsed with the default's type.
        out: the output folder; `runs/NAME-TIMESTAMP` under the current directory if `None`.
        force: replace an existing `out` (only once the new folder is complete).
        progress: told about each step of the run.
        tolerances: the `[verify]` table written to `config.toml`
            (default: the experiment's `tolerances`).
        origin: the folder this run reproduces (recorded in the manifest).

    Raises:
        ValueError: a bad config key or value, or an output folder that exists
            (without `force`) or cannot be created, before any work is done.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class ToyConfig:
        ...     seed: int = 0
        ...     scale: float = 2.0
        >>> def run_toy(config, folder, progress):
        ...     folder.log("doubling")
        ...     return {"value": 2.0 * config.scale}
        >>> toy = experiments.Experiment("toy", "doubles scale", ToyConfig(), run_toy)
        >>> import tempfile, pathlib
        >>> record = experiments.run(toy, {"scale": 3.0}, out=pathlib.Path(tempfile.mkdtemp()) / "toy")
        >>> record.results, sorted(p.name for p in record.folder.iterdir())
        ({'value': 6.0}, ['config.toml', 'log.txt', 'manifest.json', 'results.json'])
    """
    config = experiment.resolve(overrides)
    out = Path(os.path.abspath(out if out is not None else default_output_dir(experiment.name)))
    check_output_dir(out, force)
    try:
        created = _make_parents(out.parent)
    except OSError as error:
        raise ValueError(f"cannot create output folder {out}: {error.strerror or error}") from None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; the folder is an ordinary one
    except OSError as error:
        _remove_empty(created)
        raise ValueError(f"cannot create output folder {out}: {error.strerror or error}") from None

    handler = None
    captured = logging.getLogger("py.warnings")
    try:
        start, clock, cpu_clock = provenance.utc_now(), time.perf_counter(), time.process_time()
        write_config(tmp / CONFIG, experiment.name, config, tolerances or experiment.tolerances)
        logger, handler = _file_logger(tmp / LOG)
        captured.addHandler(handler)
        logging.captureWarnings(True)
        logger.info(f"experiment {experiment.name}: {experiment.description}")
        logger.info("config: " + ", ".join(f"{k}={v!r}" for k, v in configs.as_dict(config).items()))

        def report(done: int, total: int, description: str) -> None:
            logger.info(f"step {done}/{total}: {description}")
            progress(done, total, description)

        folder = RunFolder(tmp, logger)
        results = experiment.run(config, folder, report)
        if not isinstance(results, Mapping):
            raise TypeError(f"experiment {experiment.name!r} returned {type(results).__name__}, not a dict")
        results = jsonable(results, warn=logger.warning)
        (tmp / RESULTS).write_text(json.dumps(results, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        end, wall, cpu = provenance.utc_now(), time.perf_counter() - clock, time.process_time() - cpu_clock
        logger.info(f"finished in {wall:.3f} s")
        logging.captureWarnings(False)
        captured.removeHandler(handler)
        handler.close()
        handler = None

        values = configs.as_dict(config)
        manifest = {
            "experiment": experiment.name,
            "description": experiment.description,
            "seed": values.get("seed"),
            "config": values,
            "start_utc": provenance.iso(start),
            "end_utc": provenance.iso(end),
            "wall_time_seconds": wall,
            "cpu_time_seconds": cpu,
            "output_folder": str(out),
            "reproduces": origin,
            "command": provenance.command_line(),
            "versions": provenance.versions(),
            "platform": provenance.platform_info(),
            "git": provenance.git_state(Path(__file__).resolve().parent),
            "source": provenance.source_state(),
            "files": provenance.file_hashes(tmp),
        }
        (tmp / provenance.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _publish(tmp, out, force)
    except BaseException:
        if handler is not None:
            logging.captureWarnings(False)
            captured.removeHandler(handler)
            handler.close()
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise
    return RunRecord(folder=out, config=config, results=results, manifest=manifest)


def _publish(tmp: Path, out: Path, force: bool) -> None:
    """Rename the finished `tmp` to `out`, replacing an existing `out` only if `force`."""
    if not os.path.lexists(out):
        os.rename(tmp, out)
        return
    if not force:
        raise ValueError(f"output folder {out} already exists; pass --force to overwrite")
    old = out.parent / f"{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


# --- reproduce and verify -------------------------------------------------------------------


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
    from .catalog import get

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
        >>> check = experiments.runner.check_files(out)
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


def _compare_with_rerun(folder: Path, rerun: Path, check: FileCheck, comparison: Comparison,
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
        >>> verification = experiments.runner.verify(out)       # `leastaction verify DIR`
        >>> verification.ok, verification.comparison.checked > 10, verification.files.rerun_compared
        (True, True, 4)
    """

    folder: Path
    rerun: RunRecord
    comparison: Comparison
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
       with the re-run's within the `[verify]` tolerances (`experiments.verify`).
    3. Where the re-run's numbers are bit-for-bit the recorded ones (and no
       volatile value such as a timing is among them, and matplotlib is the
       version the manifest records), every figure and table compared byte for
       byte with the re-run's.

    The re-run goes to `keep` if given, else to a temporary folder that is
    deleted afterwards."""
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
        comparison = compare(expected, record.results, tolerances)
        return Verification(folder, record, comparison,
                            _compare_with_rerun(folder, record.folder, files, comparison, versions))

    if keep is not None:
        check_output_dir(Path(os.path.abspath(keep)), force=False)
        return rerun(Path(keep))
    with tempfile.TemporaryDirectory(prefix="leastaction-verify-") as scratch:
        return rerun(Path(scratch) / folder.name)
