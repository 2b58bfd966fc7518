"""Test configuration: float64 by default, shared PRNG keys, and a compilation cache.

Many tests compile the same XLA programs (an experiment and its `verify` re-run,
the same sweep in several files); JAX's persistent compilation cache, shared by
the pytest-xdist workers, compiles each once per test session. It lives in
`.pytest-xla-cache/` at the top of the checkout (ignored by git) and only ever
changes how long a test takes, not what it computes.
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
