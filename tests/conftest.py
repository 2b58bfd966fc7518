"""Test configuration: float64 by default, shared PRNG keys, and a compilation cache.

Many tests compile the same XLA programs (an experiment and its `verify` re-run,
the same sweep in several files); JAX's persistent compilation cache, shared by
the pytest-xdist workers, compiles each once per test session. It lives in
`.pytest-xla-cache/` at the top of the checkout (ignored by git) and only ever
changes how long a test takes, not what it computes.

The tests compile with XLA's default settings. Asking JAX for unoptimised
programs instead (`jax_disable_most_optimizations`) made `tests/integrators` and
`tests/lagrangian` slower (388 against 362 CPU-s: the programs then run slower
than they compile faster), and the same settings in `XLA_FLAGS` do not reach the
compiler in jax 0.10, so neither is used.
"""

from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_compilation_cache_dir", str(Path(__file__).resolve().parents[1] / ".pytest-xla-cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


@pytest.fixture
def key():
    return jax.random.key(20260223)


def pytest_addoption(parser):
    parser.addoption(
        "--site-dir", default=None,
        help="a site already built by `mkdocs build` for the `docs` tests (default: they build one)",
    )
