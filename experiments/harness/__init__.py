"""The comparison harness: every gradient method against every reference, on every problem.

    from experiments import harness
    comparison = harness.compare(problems=["mlp", "node-d16-rk4"], methods=["jax-grad", "least-action"])
    comparison.summary()["passed"]

- `problems`: the problem registry (`PROBLEMS`, `custom_problem` for any user `System`);
- `methods`: the method registry (`METHODS`: references, peers, project methods);
- `peers`: diffrax adjoints and torch autograd, implementations independent of the project;
- `metrics`: gradient agreement and timing;
- `comparison`: the loop (`compare`) and its result (`Comparison`);
- `report`: the terminal table, the Markdown/LaTeX tables and the heat map.
"""

from . import methods, peers, problems
from .comparison import Cell, Comparison, compare, default_cache_dir, enable_compilation_cache
from .methods import METHODS, Method, Prepared, method_named, register
from .metrics import compare_gradients, gradient_errors
from .problems import PROBLEMS, Problem, custom_problem, problem_named, register_problem

methods.register_defaults()

__all__ = [
    "Cell", "Comparison", "METHODS", "Method", "PROBLEMS", "Prepared", "Problem", "compare",
    "compare_gradients", "custom_problem", "default_cache_dir", "enable_compilation_cache", "gradient_errors", "method_named", "methods", "peers",
    "problem_named", "problems", "register", "register_problem",
]
