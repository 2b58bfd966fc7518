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

SMOKE_INTEGRATORS = (
    "tests/integrators/test_tableau.py::test_registry_names_and_orders",
    "tests/integrators/test_tableau.py::test_row_sum_condition_is_checked",
    "tests/integrators/test_partner.py::test_partner_formula_and_pair_symplecticity",
    "tests/integrators/test_partner.py::test_step_map_is_symplectic_and_preserves_p_dot_v[euler]",
    "tests/integrators/test_sweep.py::test_gradient_equals_backprop[mlp-funnel-relu-None-float64]",
    "tests/integrators/test_sweep.py::test_gradient_equals_backprop[resnet-10-None-float64]",
    "tests/integrators/test_memory.py::test_segment_lengths_cover_the_steps[7]",
    "tests/integrators/test_memory.py::test_strategy_errors",
    "tests/integrators/test_relax.py::test_jacobi_sweep_is_exact_after_2n_plus_1_steps",
)
"""The tests of `tests/integrators` in the fast tier (`pytest -m smoke`), by node id: the
tableaux, the partner and its symplecticity, the sweep against backprop, memory strategies and
the local relaxation. Selected here rather than marked in files that change often; a listed id
that its file no longer holds is an error, so the list cannot go stale silently."""

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


@pytest.hookimpl(tryfirst=True)  # before -m deselects: every collected test is seen here
def pytest_collection_modifyitems(config, items):
    """Mark the `SMOKE_INTEGRATORS` tests `smoke`. When whole files were collected (no `::` in the
    arguments), a listed id that a collected file does not hold is an error."""
    found, files = set(), set()
    for item in items:
        files.add(item.nodeid.split("::", 1)[0])
        if item.nodeid in SMOKE_INTEGRATORS:
            item.add_marker(pytest.mark.smoke)
            found.add(item.nodeid)
    if any("::" in str(arg) for arg in config.args):
        return
    stale = [n for n in SMOKE_INTEGRATORS if n.split("::", 1)[0] in files and n not in found]
    if stale:
        raise pytest.UsageError(f"tests/conftest.py SMOKE_INTEGRATORS names tests that do not exist: {stale}")


def pytest_terminal_summary(terminalreporter):
    """The wall time of every quick-preset run (`tests/experiments/test_catalogue.py` records them
    as the test's `quick_preset_seconds` property; shown for the record, judged by no test). Here
    in the root conftest, so that the pytest-xdist controller, which reports, has the hook."""
    times = []
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []):
        for key, value in getattr(report, "user_properties", []):
            if key == "quick_preset_seconds" and report.when == "call":
                times.append((report.nodeid.rsplit("[", 1)[-1].rstrip("]"), value))
    if times:
        terminalreporter.section("quick-preset wall times (run only, without verify)")
        for name, seconds in sorted(times):
            terminalreporter.write_line(f"{name:24s} {seconds:7.1f} s")
