"""The comparison harness: every gradient method against every reference, on every problem.

    from experiments import harness
    comparison = harness.compare(problems=["mlp", "node-d16-rk4"], methods=["jax-grad", "least-action"])
    comparison.summary()["passed"]

- `problems`: the problem registry (`PROBLEMS`, `custom_problem` for any user `System`);
- `shipped`: the registered problems, and `neural_ode_problem` of any size;
- `methods`: the method interface, its registry (`METHODS`) and the references;
- `least_action`: the project's methods under test (the sweep with each memory strategy...);
- `peers`: diffrax adjoints, torch autograd and torchdiffeq, implementations independent of the project;
- `rules`: the physical learning rules and Hamiltonian echo learning;
- `metrics`: gradient agreement (`relative_error`, `gradient_errors`) and timing (`run_timed`, and
  `metrics.time_interleaved` for several functions timed round-robin by CPU and wall time);
- `comparison`: the loop (`compare`) and its result (`Comparison`);
- `report`: the terminal table, the Markdown/LaTeX tables and the heat map.

Experiments that measure gradient methods (benchmark-gradients, memory, resnet-limit)
take their methods and problems from these registries and time them with `metrics`.
"""

from . import least_action, methods, peers, problems, rules, shipped
from .comparison import Cell, Comparison, compare, default_cache_dir, enable_compilation_cache
from .methods import METHODS, Method, Prepared, method_named, register
from .metrics import compare_gradients, gradient_errors, relative_error, run_timed
from .problems import PROBLEMS, Problem, custom_problem, problem_named, register_problem


def register_defaults() -> None:
    """Register every shipped method: references, peers, project methods, then the physical
    learning rules (run once, when this package is imported).

    Example:
        >>> from experiments import harness
        >>> list(harness.METHODS)[:3], "least-action-store-stages" in harness.METHODS
        (['jax-grad', 'jax-jvp', 'finite-diff'], True)
    """
    for method in (methods.JaxGrad(), methods.ForwardMode(), methods.FiniteDifferences(), *peers.default_methods(),
                   *least_action.least_action_methods(), rules.HamiltonianEcho(eps=1e-4), *rules.physical_rules()):
        register(method)


register_defaults()

__all__ = [
    "Cell", "Comparison", "METHODS", "Method", "PROBLEMS", "Prepared", "Problem", "compare", "compare_gradients",
    "custom_problem", "default_cache_dir", "enable_compilation_cache", "gradient_errors", "least_action",
    "method_named", "methods", "peers", "problem_named", "problems", "register", "register_defaults",
    "register_problem", "relative_error", "rules", "run_timed", "shipped",
]
