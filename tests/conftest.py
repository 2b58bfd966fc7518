"""Test configuration: float64 by default, shared PRNG keys, and a compilation cache.

Many tests compile the same XLA programs (an experiment and its `verify` re-run,
the same sweep in several files); JAX's persistent compilation cache, shared by
the pytest-xdist workers, compiles each once per test session. It lives in
`.pytest-xla-cache/` at the top of the checkout (ignored by git) and only ever
changes how long a test takes, not what it computes.

Compilation is also most of the cost of the suite itself (hundreds of small
programs, each run once or twice), so the tests compile with XLA's backend
optimisation level 0 and without its expensive LLVM passes (about 20% faster
in all). Both keep IEEE arithmetic (no fast-math), so what a test checks does
not change, only the order of some sums, far below every tolerance. The
benchmarks (`-m benchmark`) time programs, so they compile as users do.
"""

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_compilation_cache_dir", str(Path(__file__).resolve().parents[1] / ".pytest-xla-cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


@pytest.fixture
def key():
    return jax.random.key(20260223)


FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
"""`XLA_FLAGS` of the test processes (and the worker processes they start), benchmarks excepted."""


def pytest_configure(config):
    if "benchmark" in (config.option.markexpr or "").replace("not benchmark", ""):
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FAST_COMPILE}".strip()


def pytest_addoption(parser):
    parser.addoption(
        "--site-dir", default=None,
        help="a site already built by `mkdocs build` for the `docs` tests (default: they build one)",
    )
