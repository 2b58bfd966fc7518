"""Provenance of a run: package versions, platform, git state and file hashes.

`manifest.json` is what lets a reader of an experiment folder check what ran,
where, from which commit (or, outside a git checkout, which version and which
source files: `source_state`), and that the files in the folder are the ones
the run wrote (`sha256` of each).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

PACKAGES = (
    "leastaction", "jax", "jaxlib", "diffrax", "equinox", "lineax", "optimistix", "numpy", "scipy", "matplotlib",
    "optax", "scikit-learn", "dask", "distributed", "rich", "typer", "tomli-w", "torch",
)
"""Distributions whose versions a manifest records (`None` when not installed)."""
MANIFEST = "manifest.json"


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (`None` when not installed)."""
    found: dict[str, str | None] = {}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def cpu_info() -> dict[str, str | int | None]:
    """The CPU model (from `/proc/cpuinfo` where there is one), the logical cores of
    the machine and the cores this process may run on."""
    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        available = os.cpu_count()
    return {"model": model or platform.processor() or platform.machine(),
            "logical_cores": os.cpu_count(), "available_cores": available}


def platform_info() -> dict[str, str]:
    """Python version and the machine the run used (CPU model and cores included)."""
    import jax

    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "system": platform.system(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "jax_backend": jax.default_backend(),
        "jax_enable_x64": bool(jax.config.jax_enable_x64),
        "jax_devices": [str(device) for device in jax.devices()],
        "cpu": cpu_info(),
        "xla_flags": os.environ.get("XLA_FLAGS"),
    }


def git_state(directory: Path) -> dict[str, str | bool | None]:
    """`{"commit": sha, "dirty": bool}` for the checkout holding `directory`.

    `dirty` means tracked files differ from the commit (`git status --porcelain
    --untracked-files=no`): run folders and other untracked files written next
    to the code do not count. Both are `None` when `directory` is not in a git
    checkout or `git` is not installed.
    """
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


SOURCE_PACKAGES = ("lagrangian", "integrators", "experiments")
"""The import packages whose source a manifest fingerprints (`source_state`)."""


def source_state(root: Path | None = None, packages: tuple[str, ...] = SOURCE_PACKAGES) -> dict[str, str | int | None]:
    """The version of the code that ran, in a git checkout or not.

    `{"version": V, "files": n, "sha256": digest, "root": path}`: `version` is the
    installed `leastaction` distribution's (`None` if it is not installed), and
    `sha256` fingerprints the `n` Python files of `packages` under `root` (default:
    the folder holding this package, a checkout or `site-packages`): the SHA-256 of
    the lines `sha256(file)  relative/posix/path`, sorted by path. Byte-identical
    sources give the same digest wherever they are installed, so a run from
    `pip install .` (where `git_state` has no commit) can be matched to a commit
    by computing `source_state(checkout)` there.

    Example:
        >>> state = experiments.manifest.source_state()
        >>> state["files"] > 50, len(state["sha256"])
        (True, 64)
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    lines = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                lines.append(f"{sha256(path)}  {path.relative_to(root).as_posix()}")
    lines.sort(key=lambda line: line.split("  ", 1)[1])
    try:
        version = importlib.metadata.version("leastaction")
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"version": version, "files": len(lines),
            "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(), "root": str(root)}


def sha256(path: Path) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(folder: Path, exclude: tuple[str, ...] = (MANIFEST,)) -> dict[str, str]:
    """`{relative/posix/path: sha256}` for every file under `folder`, sorted."""
    folder = Path(folder)
    return {
        path.relative_to(folder).as_posix(): sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() not in exclude
    }


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z` suffix, to the microsecond."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def command_line() -> list[str]:
    return list(sys.argv)
