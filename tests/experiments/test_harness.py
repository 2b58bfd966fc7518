"""The comparison harness: registries, references, peers, and a compare that can fail.

The full default comparison (every method on every problem) is the job of
`leastaction compare`; here one reduced comparison (two problems, the methods
that apply to them) runs through the CLI and is shared by the read-only tests.
It compiles every method on both problems (about 25 s on one core), so those tests
are `slow`; the default suite runs `compare` through the CLI on one problem in
`test_wrong_method_makes_compare_exit_nonzero` (and tests/experiments/test_cli.py).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import integrators
import lagrangian
from experiments import harness
from experiments.cli import app
from experiments.harness import peers, problems as problem_registry
from experiments.harness.least_action import LeastAction
from experiments.harness.methods import Method, Prepared
from tests.helpers import rel_l2

REDUCED_PROBLEMS = ["resnet", "node-d2-rk4"]
REDUCED_METHODS = [
    "jax-grad", "jax-jvp", "finite-diff", "diffrax-checkpoint", "diffrax-backsolve", "torch",
    "least-action", "least-action-store-stages", "least-action-checkpoint", "tension", "least-action-heun",
]
if "least-action-reversible-heun" in harness.METHODS:
    REDUCED_METHODS.append("least-action-reversible-heun")


def _args(problems, methods):
    out = []
    for p in problems:
        out += ["--problem", p]
    for m in methods:
        out += ["--method", m]
    return out


@pytest.fixture(scope="module")
def reduced(tmp_path_factory, cli):
    """`leastaction compare` on two problems and the methods above: (folder, results, output)."""
    out = tmp_path_factory.mktemp("compare") / "reduced"
    result = cli.invoke(app, ["compare", *_args(REDUCED_PROBLEMS, REDUCED_METHODS), "--out", str(out),
                              "--repeats", "2", "--no-cache"])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "results.json").read_text()), result.output


def _cell(results, method, problem):
    (cell,) = [c for c in results["cells"] if c["method"] == method and c["problem"] == problem]
    return cell


# --- registries ----------------------------------------------------------------------------


def test_default_registries_hold_every_problem_and_method():
    for name in ["mlp", "resnet", "recurrent", "linear-rk4", "harmonic-rk4", "pendulum-rk4",
                 *(f"node-d{d}-rk4" for d in (2, 16, 64))]:
        assert name in harness.PROBLEMS
    for name in ["jax-grad", "jax-jvp", "finite-diff", "diffrax-checkpoint", "diffrax-backsolve", "torch",
                 "least-action", "least-action-checkpoint", "least-action-checkpoint-log", "tension"]:
        assert name in harness.METHODS
    for scheme in harness.least_action.scheme_names():
        assert f"least-action-{scheme}" in harness.METHODS
    assert set(integrators.TABLEAUX) <= set(harness.least_action.scheme_names())
    kinds = {m.kind for m in harness.METHODS.values()}
    assert kinds == {"reference", "peer", "project"}


@pytest.mark.slow  # builds every default problem, whose weight draws compile a program per shape (about
# 20 s on one core); applicability and its reasons are checked on single problems in the default suite
def test_every_default_pair_is_applicable_or_has_a_reason():
    """The default comparison covers every pair: each is either computed or n/a with a reason,
    and every method applies to at least one default problem."""
    built = [harness.problem_named(name) for name in harness.PROBLEMS]
    for method in harness.METHODS.values():
        reasons = [method.applies(problem) for problem in built]
        assert all(r is None or (isinstance(r, str) and r) for r in reasons), method.name
        if (method.name == "torch" and peers.torch_missing()) or (
                method.name == "torchdiffeq" and peers.torchdiffeq_missing()):
            continue
        assert any(r is None for r in reasons), f"{method.name} applies to no default problem"
    torch = harness.METHODS["torch"]
    assert torch.applies(harness.problem_named("pendulum-rk4")) is not None


def test_the_harness_asks_the_memory_strategy_for_its_rules_and_costs():
    """Applicability is the strategy's own `check` and the counts its own `cost` (times the
    stages of a Runge-Kutta step, in units of f)."""
    mlp, ode = harness.problem_named("mlp"), harness.problem_named("node-d2-rk4")
    checkpoint = harness.METHODS["least-action-checkpoint"]
    with pytest.raises(ValueError) as refused:
        integrators.Checkpoint(2).check(mlp.system)
    assert checkpoint.applies(mlp) == str(refused.value)
    assert checkpoint.applies(ode) is None
    for name, memory in [("least-action", integrators.StoreAll()), ("least-action-store-stages",
                                                                     integrators.StoreStages()),
                         ("least-action-checkpoint", integrators.Checkpoint(2))]:
        cost, counted = memory.cost(ode.steps), harness.METHODS[name].prepare(ode).evaluations
        assert counted["unit"] == "f" and ode.stages == 4
        assert counted["f"] == 4 * (cost.evaluations + cost.relinearisations)
        assert counted["vjp"] == 4 * cost.pullbacks and counted["stored"] == cost.stored
    reversible = harness.METHODS["least-action-reversible-heun"]
    assert reversible.memory_for(reversible.target(ode).system) == integrators.Reversible()
    assert harness.METHODS["least-action-heun"].memory_for(ode.system) == integrators.StoreAll()


def test_problems_are_deterministic_and_rediscretisations_share_weights():
    a, b = harness.problem_named("node-d16-rk4", seed=3), harness.problem_named("node-d16-rk4", seed=3)
    euler = harness.METHODS["least-action-euler"].target(a)
    other = harness.problem_named("node-d16-rk4", seed=4)
    assert euler.name == "node-d16-euler" and euler.family == a.family and euler.scheme == "euler"
    for x, y in [(a.theta, b.theta), (a.theta, euler.theta), (a.x0, euler.x0)]:
        assert all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y)))
    assert not np.array_equal(a.theta["W"], other.theta["W"])
    assert harness.problem_named("mlp", dtype=jnp.float32).x0.dtype == jnp.float32


# --- continuous references -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["linear-rk4", pytest.param("harmonic-rk4", marks=pytest.mark.slow)])  # 2 s each
def test_closed_form_is_the_limit_of_the_discrete_gradient(name):
    """The Van Loan closed form is the h -> 0 limit of jax.grad of RK4: the error falls
    by 2^4 when the step halves."""
    problem = harness.problem_named(name)
    exact = problem.continuous(problem)
    t_final = float(problem.ts[-1])

    def error(steps):
        fine = problem.rediscretise(f"rk4-{steps}", lambda f, ts: integrators.discretise(
            f, integrators.uniform_grid(t_final, steps), "rk4"))
        return harness.gradient_errors(jax.grad(fine.loss_at)(fine.theta), exact)["relative_l2_error"]

    coarse, fine = error(100), error(200)
    assert fine < 2e-8
    assert 12 < coarse / fine < 20


# --- the reduced comparison through the CLI --------------------------------------------------


@pytest.mark.slow  # reads the reduced comparison
def test_reduced_compare_writes_a_complete_folder(reduced):
    out, results, output = reduced
    for path in ["results.json", "config.toml", "manifest.json", "log.txt", "figures/heatmap.png",
                 "figures/heatmap.pdf", "tables/comparison.md", "tables/comparison.tex", "tables/matrix.md",
                 "tables/matrix.tex", "tables/continuous.md", "tables/not_applicable.tex"]:
        assert (out / path).is_file(), path
    assert "\\toprule" in (out / "tables/matrix.tex").read_text()
    assert len(results["cells"]) == len(REDUCED_PROBLEMS) * len(REDUCED_METHODS)
    assert results["summary"]["project_failures"] == 0
    assert "relative L2 error vs jax-grad" in output
    assert f"folder: {out}" in output


@pytest.mark.slow  # reads the reduced comparison
def test_project_methods_pass_and_references_agree(reduced):
    _, results, _ = reduced
    for c in results["cells"]:
        if c["status"] == "n/a":
            assert c["reason"]
            continue
        if c["kind"] == "project":
            assert c["status"] == "pass", c
            assert c["errors"]["relative_l2_error"] <= 1e-12
        assert c["timing"]["median_seconds"] > 0
    assert _cell(results, "finite-diff", "resnet")["errors"]["relative_l2_error"] <= 1e-6
    assert _cell(results, "jax-jvp", "node-d2-rk4")["errors"]["relative_l2_error"] <= 1e-12
    assert _cell(results, "diffrax-checkpoint", "node-d2-rk4")["errors"]["relative_l2_error"] <= 1e-12
    if "least-action-reversible-heun" in REDUCED_METHODS:
        reversible = _cell(results, "least-action-reversible-heun", "node-d2-rk4")
        assert reversible["target"] == "node-d2-reversible-heun"
        assert 0 <= reversible["aux"]["reconstruction_error"] < 1e-12


@pytest.mark.slow  # reads the reduced comparison
def test_inapplicable_pairs_are_marked_not_dropped(reduced):
    _, results, _ = reduced
    diffrax_resnet = _cell(results, "diffrax-checkpoint", "resnet")
    assert diffrax_resnet["status"] == "n/a" and "not an ODE problem" in diffrax_resnet["reason"]
    assert _cell(results, "least-action-heun", "resnet")["status"] == "n/a"
    heun = _cell(results, "least-action-heun", "node-d2-rk4")
    assert heun["status"] == "pass" and heun["target"] == "node-d2-heun"


@pytest.mark.slow  # reads the reduced comparison
def test_backsolve_is_reported_next_to_the_continuous_reference(reduced):
    """BacksolveAdjoint is judged by no tolerance; its error against the continuous gradient
    is of the order of the exact methods' discretisation error, not of rounding."""
    _, results, _ = reduced
    backsolve = _cell(results, "diffrax-backsolve", "node-d2-rk4")
    exact = _cell(results, "least-action", "node-d2-rk4")
    assert backsolve["status"] == "reported" and backsolve["tolerance"] is None
    assert 1e-12 < backsolve["errors"]["relative_l2_error"] < 1e-3
    assert exact["continuous"]["relative_l2_error"] < 1e-4
    assert backsolve["continuous"]["relative_l2_error"] < 1e-4
    heun = _cell(results, "least-action-heun", "node-d2-rk4")
    assert heun["continuous"]["relative_l2_error"] > exact["continuous"]["relative_l2_error"]


@pytest.mark.skipif(peers.torch_missing() is not None, reason=str(peers.torch_missing()))
def test_torch_agrees_with_least_action_on_mlp_and_resnet():
    comparison = harness.compare(problems=["mlp", "resnet"], methods=["torch", "least-action"], repeats=1)
    for problem in ("mlp", "resnet"):
        torch_cell = comparison.cell("torch", problem)
        ours = comparison.cell("least-action", problem)
        assert torch_cell.status == "pass"
        assert harness.gradient_errors(torch_cell.gradient, ours.gradient)["relative_l2_error"] <= 1e-12


# --- the harness can fail --------------------------------------------------------------------


class SignError(Method):
    """Test-only project method: the least-action gradient with its sign flipped."""

    name = "sign-error"
    kind = "project"
    description = "least-action sweep with a sign error in the gradient (test only)"

    def applies(self, problem):
        return None if isinstance(problem.system, lagrangian.ResNet) else "ResNet only"

    def prepare(self, problem):
        def fn(theta, x0):
            grad = integrators.sweep(problem.system, theta, x0, problem.loss, check=False).grad
            return jax.tree.map(jnp.negative, grad), {}

        return Prepared(fn, (problem.theta, problem.x0))


def test_wrong_method_makes_compare_exit_nonzero(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(harness.METHODS, "sign-error", SignError())
    out = tmp_path / "wrong"
    correct = ["least-action", "least-action-relax", "least-action-newton"]
    result = cli.invoke(app, ["compare", "-p", "resnet", *_args([], ["jax-grad", *correct, "sign-error"]),
                              "--out", str(out), "--repeats", "1", "--no-cache"])
    assert result.exit_code == 1, result.output
    assert "sign-error on resnet (fail)" in result.output
    results = json.loads((out / "results.json").read_text())
    assert results["summary"]["failed_cells"] == ["sign-error on resnet (fail)"]
    for name in correct:  # the local and parallel-in-time solvers of docs/design.md 2.6 included
        assert _cell(results, name, "resnet")["status"] == "pass"
    assert _cell(results, "sign-error", "resnet")["errors"]["relative_l2_error"] > 1e-3


def test_a_method_that_raises_is_an_error_not_a_crash():
    class Broken(LeastAction):
        def prepare(self, problem):
            raise RuntimeError("deliberately broken")

    comparison = harness.compare(problems=["resnet"], methods=[Broken("broken", integrators.StoreAll(), "x")],
                                 repeats=1)
    cell = comparison.cell("broken", "resnet")
    assert cell.status == "error" and "deliberately broken" in cell.reason
    assert comparison.failures() == [cell]


def test_a_reference_that_fails_to_trace_fails_only_its_own_cells(monkeypatch):
    """A reference that cannot be computed on one target costs only the cells of that
    target their reference."""
    from experiments.harness.methods import JaxGrad

    class FailsOnHeun(JaxGrad):
        name = "grad-but-not-heun"

        def prepare(self, problem):
            prepared = super().prepare(problem)
            if not problem.name.endswith("-heun"):
                return prepared

            def fn(*args):
                raise RuntimeError("deliberately untraceable")

            return Prepared(fn, prepared.args, prepared.evaluations)

    monkeypatch.setitem(harness.METHODS, "grad-but-not-heun", FailsOnHeun())
    comparison = harness.compare(problems=["node-d2-rk4"], reference="grad-but-not-heun", repeats=1,
                                 methods=["least-action-heun", "least-action-midpoint", "least-action-euler"])
    heun = comparison.cell("least-action-heun", "node-d2-rk4")
    assert heun.status == "no-reference" and "deliberately untraceable" in heun.reason
    for name in ("least-action-midpoint", "least-action-euler"):
        assert comparison.cell(name, "node-d2-rk4").status == "pass"


@pytest.mark.parametrize("seconds, budget, repeats, calls", [
    (0.05, 0.01, 5, 1),   # the warm-up call exceeds the budget: it is the one timed call, no other call
    (0.0, 10.0, 3, 4),    # fast: one warm-up and `repeats` timed calls
])
def test_timing_calls_and_budget(seconds, budget, repeats, calls):
    import time

    from experiments.harness.metrics import time_calls

    made = []

    def call():
        made.append(1)
        time.sleep(seconds)
        return jnp.zeros(1)

    _, timing = time_calls(call, (), repeats=repeats, budget=budget)
    assert len(made) == calls
    assert len(timing.calls) == (1 if seconds > budget else repeats)


def test_interleaved_timer_calls_round_robin():
    """One warm-up call of each function in order, then rounds of one call of each, until each
    has `repeats` timed calls; a function whose warm-up call exceeds the budget is timed by
    that call alone and left out of the rounds."""
    import time

    from experiments.harness.metrics import time_interleaved

    order = []

    def named(name, seconds=0.0):
        def call():
            order.append(name)
            time.sleep(seconds)
            return name

        return call, ()

    timed = time_interleaved({"a": named("a"), "b": named("b"), "slow": named("slow", 0.05)}, repeats=3, budget=0.02)
    assert "".join(n[0] for n in order) == "abs" + "ab" * 3
    assert {name: out for name, (out, _) in timed.items()} == {"a": "a", "b": "b", "slow": "slow"}
    assert [len(timed[n][1].calls) for n in ("a", "b", "slow")] == [3, 3, 1]
    assert [timed[n][1].cut_by_budget for n in ("a", "b", "slow")] == [False, False, True]
    assert timed["slow"][1].calls == (timed["slow"][1].warmup_seconds,)


def test_interleaved_timer_reports_medians_of_wall_and_process_cpu_time():
    """A sleeping call costs wall time and (almost) no CPU time; a call spinning until the
    process has used 10 ms of CPU costs at least that much of both. The medians are those of
    the recorded calls. (Which clock is which is checked, not how fast anything is.)"""
    import statistics
    import time

    from experiments.harness.metrics import time_interleaved

    def spin():
        start = time.process_time()
        while time.process_time() - start < 0.01:
            pass

    timed = time_interleaved({"sleep": (time.sleep, (0.02,)), "spin": (spin, ())}, repeats=7)
    sleep, busy = timed["sleep"][1], timed["spin"][1]
    for timing in (sleep, busy):
        assert len(timing.calls) == len(timing.cpu_calls) == 7
        assert timing.median_seconds == statistics.median(timing.calls)
        assert timing.median_cpu_seconds == statistics.median(timing.cpu_calls)
    assert sleep.median_seconds >= 0.02 and sleep.median_cpu_seconds < 0.01
    assert busy.median_cpu_seconds >= 0.01 and busy.median_seconds >= 0.01


@pytest.mark.skipif(peers.torchdiffeq_missing() is not None, reason=str(peers.torchdiffeq_missing()))
@pytest.mark.parametrize("batch", [None, pytest.param(3, marks=pytest.mark.slow)])  # a second torch and jax program
def test_torchdiffeq_is_the_gradient_of_the_rk38_map(batch):
    """torchdiffeq's rk4 (the 3/8 rule) with autograd equals jax.grad through the project's rk38
    map to rounding (float64: <= 1e-12 relative L2; measured ~5e-16), for one state and a batch."""
    from experiments.harness.shipped import neural_ode_problem

    problem = neural_ode_problem(4, 20, batch=batch, scheme="rk4", targets=False)
    method = harness.method_named("torchdiffeq")
    target = method.target(problem)
    assert target.scheme == "rk38" and method.applies(target) is None
    grad, _ = method.prepare(target).fn()
    reference = jax.grad(target.loss_at)(target.theta)
    assert harness.relative_error(grad, reference) <= 1e-12
    assert method.applies(harness.problem_named("pendulum-rk4")) is not None


@pytest.mark.slow  # about 4 s on one core; diffrax's ReversibleHeun gradient equals autodiff through the
# project's map in the default suite in tests/experiments/test_train_neural_ode.py
def test_diffrax_reversible_heun_is_the_gradient_of_the_project_map():
    """`diffrax.ReversibleHeun` steps the project's reversible-Heun map: its gradient by
    `RecursiveCheckpointAdjoint` equals jax.grad through that map to rounding (float64 <= 1e-12)."""
    from experiments.harness.shipped import neural_ode_problem

    problem = neural_ode_problem(4, 20, batch=None, scheme="rk4", targets=False).rediscretise(
        "reversible-heun", lambda field, ts: integrators.discretise(field, ts, "reversible-heun"))
    method = harness.method_named("diffrax-checkpoint")
    assert method.applies(problem) is None
    ready = method.prepare(problem)
    grad, aux = jax.jit(ready.fn)(*ready.args)
    assert int(aux["steps"]) == 20
    assert harness.relative_error(grad, jax.grad(problem.loss_at)(problem.theta)) <= 1e-12


# --- bad names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message, valid",
    [
        (["-p", "no-such-problem"], "unknown problem 'no-such-problem'", "node-d64-rk4"),
        (["-m", "no-such-method"], "unknown method 'no-such-method'", "diffrax-backsolve"),
        (["--reference", "least-action"], "is a project method", "jax-grad"),
        (["--reference", "nope"], "unknown method 'nope'", "finite-diff"),
        (["--dtype", "float16"], "unknown dtype 'float16'", "float32"),
    ],
)
def test_unknown_names_are_one_line_errors_listing_valid_names(cli, tmp_path, args, message, valid):
    result = cli.invoke(app, ["compare", *args, "--out", str(tmp_path / "x"), "--no-cache"])
    assert result.exit_code == 2, result.output
    assert message in result.output and valid in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_list_shows_methods_and_problems(cli):
    result = cli.invoke(app, ["compare", "--list"])
    assert result.exit_code == 0, result.output
    for name in ["least-action-checkpoint", "diffrax-backsolve", "finite-diff", "pendulum-rk4", "node-d64-rk4"]:
        assert name in result.output


# --- float32, user-defined systems --------------------------------------------------------------


@pytest.mark.slow  # compiles four methods on two problems in float32 (about 7 s on one core); float32
# gradients are checked against jax.grad in the default suite by tests/integrators/test_sweep.py
def test_float32_comparison_passes_at_float32_tolerance():
    methods = ["jax-grad", "least-action", "tension", "least-action-euler"]
    comparison = harness.compare(problems=["resnet", "linear-rk4"], methods=methods, dtype="float32",
                                 repeats=1)
    assert not comparison.failures()
    for c in comparison.cells:
        if c.status == "n/a":  # least-action-euler re-discretises ODEs only
            continue
        assert c.tolerance == 1e-5
        assert all(np.asarray(g).dtype == np.float32 for g in jax.tree.leaves(c.gradient))
        assert c.errors["relative_l2_error"] <= 1e-5
    # The continuous reference is float64 whatever the run's dtype: Euler's O(h) gap shows.
    assert 1e-3 < comparison.cell("least-action-euler", "linear-rk4").continuous["relative_l2_error"] < 1e-1


class Spiral(lagrangian.VectorField):
    """A user-defined field, `f(x) = A x + c tanh(x)`."""

    state_dim: int = 3

    def init(self, key, dtype=jnp.float64):
        return {"A": jax.random.normal(key, (3, 3), dtype) / 3, "c": jnp.asarray(0.5, dtype)}

    def __call__(self, t, x, theta):
        return theta["A"] @ x + theta["c"] * jnp.tanh(x)


def test_user_defined_systems_are_problems(key):
    field_problem = harness.custom_problem("spiral-rk4", Spiral(), jnp.ones((2, 3)),
                                           ts=integrators.uniform_grid(1.0, 10), key=key)
    layered = harness.custom_problem("tiny-mlp", lagrangian.MLP((3, 5, 2)), jnp.ones(3), key=key)
    comparison = harness.compare(problems=[field_problem, layered],
                                 methods=["jax-grad", "least-action", "least-action-rk4", "least-action-midpoint"],
                                 repeats=1)
    assert not comparison.failures()
    # least-action-rk4 on a problem stepped by RK4 sweeps the problem itself: the same gradient as least-action.
    same = comparison.cell("least-action-rk4", "spiral-rk4")
    assert same.target == "spiral-rk4"
    assert harness.gradient_errors(same.gradient, comparison.cell("least-action", "spiral-rk4").gradient)[
        "relative_l2_error"] == 0.0
    assert comparison.cell("least-action", "tiny-mlp").status == "pass"
    assert comparison.cell("least-action-midpoint", "spiral-rk4").target == "spiral-midpoint"
    assert comparison.cell("least-action-midpoint", "tiny-mlp").status == "n/a"
    assert comparison.cell("least-action", "spiral-rk4").continuous["relative_l2_error"] < 1e-5


def test_diffrax_solver_steps_exactly_like_the_tableau():
    problem = harness.problem_named("node-d16-rk4")
    import diffrax

    solver = peers.diffrax_solver(integrators.tableau("rk4"))
    term = diffrax.ODETerm(lambda t, y, args: jax.vmap(lambda x: problem.field(t, x, args))(y))
    solution = diffrax.diffeqsolve(term, solver, problem.ts[0], problem.ts[-1], None, problem.x0,
                                   args=problem.theta, stepsize_controller=diffrax.StepTo(problem.ts),
                                   saveat=diffrax.SaveAt(t1=True))
    ours = integrators.output(problem.system, problem.theta, problem.x0)
    assert np.max(np.abs(np.asarray(solution.ys[-1]) - np.asarray(ours))) < 1e-14


def test_heatmap_labels_tell_an_exact_zero_from_an_error_of_one():
    """Cell text is the rounded exponent of the error, and `exact` for an error of exactly zero:
    0 and 1e0 (and 0.5, once drawn as "-0") no longer share the label "0"."""
    from experiments.harness import report

    assert [report.cell_label(e) for e in (0.0, 1.0, 0.5, 2.9, 4e-13, 3e-19)] == \
        ["exact", "0", "0", "0", "-12", "-19"]
    errors = {"exact-method": 0.0, "unit-error": 1.0, "half-error": 0.5, "tiny": 1e-14}
    results = {
        "methods": {m: {} for m in errors}, "problems": {"p": {}}, "reference": "jax-grad", "dtype": "float64",
        "cells": [{"method": m, "problem": "p", "status": "pass", "errors": {"relative_l2_error": e}}
                  for m, e in errors.items()],
    }
    fig = report.heatmap(results)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["exact", "0", "0", "-14"]
    assert fig.axes[-1].get_ylabel().endswith('(cells: rounded; "exact": zero error)')  # the colour bar says so
    import matplotlib.pyplot as plt

    plt.close(fig)
