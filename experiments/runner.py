"""Experiment folders: an `Experiment` run from a resolved config into a folder
that holds everything needed to read, re-run and verify it (docs/design.md 4).

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
from .tolerances import DEFAULT_ATOL, DEFAULT_RTOL, Tolerances

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
            dotted path without list indices (`experiments.tolerances`).
        verify_rtol, verify_atol: the tolerances `verify` uses, written into
            each folder's `config.toml` under `[verify]`.
        figures: the README figures this experiment makes,
            `{stem under figures/: stem of the run's figures/}`; `leastaction
            figures` regenerates them from a fresh run with `figures_config`.
        figures_config: the config overrides of that run.
        readme_tables: the README tables this experiment makes, `{block name: stem of
            the run's tables/}`: `leastaction figures` rewrites the lines between
            `<!-- NAME -->` and `<!-- /NAME -->` of README.md with the run's
            `tables/STEM.md` (same run as the figures).

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
    readme_tables: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not self.name or not all(ch.isalnum() or ch in "-_" for ch in self.name):
            raise ValueError(f"experiment names are non-empty [A-Za-z0-9_-]; got {self.name!r}")
        configs.check_defaults(self.config)
        self.tolerances  # validates the verify fields
        if self.figures or self.readme_tables:
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
