"""How two gradients are compared, and how a gradient method is timed.

Agreement of a gradient `g` with a reference `r` (pytrees of the same
structure, all leaves concatenated, compared in float64):

    relative L2 error   |g - r|_2 / |r|_2          (|g - r|_2 when r = 0)
    max-abs error       max_i |g_i - r_i|
    cosine similarity   g . r / (|g|_2 |r|_2)
    norm ratio          |g|_2 / |r|_2

Time is that of a compiled, warm call: the method's function is compiled
once (`jax.jit(...).lower(...).compile()`, whose compile time and XLA memory
statistics are recorded), called once to warm up, then called up to `repeats`
times; the median is reported. Each call is timed by two clocks side by side:
wall time (`time.perf_counter`) and the CPU time of this process, all its
threads (`time.process_time`). Expensive methods stop early once `budget`
seconds of wall time have been spent timing them (at least one timed call; a
warm-up call slower than `budget` counts as that call). Several functions
timed together are called round-robin (`time_interleaved`: one call of each,
repeated), so a drift in the machine's load reaches all of them alike. Every
experiment that times a gradient uses `run_timed` (or `time_calls` /
`time_interleaved` for functions it compiled itself).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax
import numpy as np
from jaxtyping import PyTree


def flat(tree: PyTree) -> np.ndarray:
    """All leaves of a pytree concatenated into one float64 vector."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return np.zeros(0)
    return np.concatenate([np.ravel(np.asarray(leaf, dtype=np.float64)) for leaf in leaves])


def relative(error: float, reference: float) -> float:
    """`error / reference`, or `error` itself when the reference vanishes."""
    return float(error / reference) if reference > 0 else float(error)


def relative_error(candidate: PyTree, reference: PyTree) -> float:
    """`|g - r|_2 / |r|_2` over all leaves (in float64; `|g - r|_2` when `r = 0`).

    Example:
        >>> from experiments.harness.metrics import relative_error
        >>> f"{relative_error({'w': jnp.array([3.0, 4.0])}, {'w': jnp.array([3.0, 4.0 + 5e-9])}):.1e}"
        '1.0e-09'
    """
    g, r = flat(candidate), flat(reference)
    if g.shape != r.shape:
        raise ValueError(f"gradient has {g.size} entries, the reference {r.size}")
    return relative(np.linalg.norm(g - r), np.linalg.norm(r))


def relative_max_error(candidate, reference) -> float:
    """`max_i |g_i - r_i| / max_i |r_i|` over all leaves (the max-norm relative error).

    Example:
        >>> from experiments.harness.metrics import relative_max_error
        >>> relative_max_error(jnp.array([1.0, 2.1]), jnp.array([1.0, 2.0]))
        0.05...
    """
    g, r = flat(candidate), flat(reference)
    return relative(float(np.max(np.abs(g - r))), float(np.max(np.abs(r))))


def gradient_errors(candidate: PyTree, reference: PyTree) -> dict:
    """Relative L2 and max-abs error, cosine similarity and norm ratio of `candidate` vs `reference`.

    Example:
        >>> from experiments import harness
        >>> errors = harness.gradient_errors({"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([1.0, 2.0 + 1e-9])})
        >>> sorted(errors), f"{errors['relative_l2_error']:.1e}"
        (['cosine_similarity', 'max_abs_error', 'norm', 'norm_ratio', 'norm_reference', 'relative_l2_error'], '4.5e-10')
    """
    structure_c, structure_r = jax.tree.structure(candidate), jax.tree.structure(reference)
    if structure_c != structure_r:
        raise ValueError(f"gradient structure {structure_c} does not match the reference's {structure_r}")
    g, r = flat(candidate), flat(reference)
    norm_g, norm_r = float(np.linalg.norm(g)), float(np.linalg.norm(r))
    return {
        "relative_l2_error": relative_error(g, r),
        "max_abs_error": float(np.max(np.abs(g - r))) if g.size else 0.0,
        "cosine_similarity": float(g @ r / (norm_g * norm_r)) if norm_g * norm_r > 0 else float("nan"),
        "norm_ratio": norm_g / norm_r if norm_r > 0 else float("nan"),
        "norm": norm_g,
        "norm_reference": norm_r,
    }


def compare_gradients(candidate: PyTree, reference: PyTree) -> dict:
    """`gradient_errors` overall, plus the relative L2 and max-abs error of each leaf (`per_leaf`).

    Example:
        >>> from experiments import harness
        >>> report = harness.compare_gradients({"w": jnp.ones(2), "b": jnp.ones(1)}, {"w": jnp.ones(2), "b": 2 * jnp.ones(1)})
        >>> sorted(report["per_leaf"])
        ['b', 'w']
    """
    result = gradient_errors(candidate, reference)
    per_leaf = {}
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(candidate)[0], jax.tree.leaves(reference)):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        per_leaf[jax.tree_util.keystr(path, simple=True, separator=".")] = {
            "shape": list(a.shape),
            "norm_reference": float(np.linalg.norm(b)),
            "relative_l2_error": relative(np.linalg.norm(a - b), np.linalg.norm(b)),
            "max_abs_error": float(np.max(np.abs(a - b))),
        }
    result["norm_least_action"] = result["norm"]
    result["per_leaf"] = per_leaf
    return result


@dataclass(frozen=True)
class Timing:
    """Seconds: compile (None when not compiled by XLA), median and all timed calls by wall
    time (`calls`) and by process CPU time (`cpu_calls`, the same calls), the warm-up call by
    both clocks; XLA's memory statistics of the compiled program (`xla_memory`; None when not
    compiled); `cut_by_budget` when fewer calls than asked for were timed."""

    compile_seconds: float | None
    median_seconds: float
    calls: tuple[float, ...]
    memory: dict | None = None
    cpu_calls: tuple[float, ...] = ()
    warmup_seconds: float | None = None
    warmup_cpu_seconds: float | None = None
    cut_by_budget: bool = False

    @property
    def temp_bytes(self) -> int | None:
        return None if self.memory is None else self.memory["temp_bytes"]

    @property
    def median_cpu_seconds(self) -> float | None:
        """The median process CPU time of the timed calls."""
        return statistics.median(self.cpu_calls) if self.cpu_calls else None

    def as_dict(self) -> dict:
        return {
            "compile_seconds": self.compile_seconds,
            "median_seconds": self.median_seconds,
            "median_cpu_seconds": self.median_cpu_seconds,
            "timed_calls": len(self.calls),
            "all_seconds": list(self.calls),
            "all_cpu_seconds": list(self.cpu_calls),
            "warmup_seconds": self.warmup_seconds,
            "warmup_cpu_seconds": self.warmup_cpu_seconds,
            "cut_by_budget": self.cut_by_budget,
            "xla_temp_bytes": self.temp_bytes,
            "xla_memory": self.memory,
        }


def _block(out):
    return jax.tree.map(lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, out)


def xla_memory(executable) -> dict | None:
    """XLA's memory statistics of a compiled program, in bytes (`memory_analysis()`): the
    temporary buffers it allocates (deterministic; not a process RSS), its arguments and
    outputs. `None` where the backend does not report them."""
    try:
        stats = executable.memory_analysis()
        temp, argument, output = (int(stats.temp_size_in_bytes), int(stats.argument_size_in_bytes),
                                  int(stats.output_size_in_bytes))
    except Exception:  # memory analysis is backend-dependent; absent means "not measured"
        return None
    return {"temp_bytes": temp, "argument_bytes": argument, "output_bytes": output,
            "total_bytes": temp + argument + output}


def compile_program(fn: Callable, args: tuple):
    """`(executable, seconds, memory)`: `fn` traced, lowered and compiled by XLA for `args`;
    `memory` is `xla_memory` of the executable."""
    start = time.perf_counter()
    executable = jax.jit(fn).lower(*args).compile()
    return executable, time.perf_counter() - start, xla_memory(executable)


def compile_lowered(lowered):
    """`(executable, seconds, temp_bytes)` for an already lowered program."""
    start = time.perf_counter()
    executable = lowered.compile()
    seconds = time.perf_counter() - start
    memory = xla_memory(executable)
    return executable, seconds, None if memory is None else memory["temp_bytes"]


def _clocked(call: Callable, args: tuple) -> tuple[object, float, float]:
    """`(output, wall seconds, process CPU seconds)` of one call, output ready."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = _block(call(*args))
    return out, time.perf_counter() - wall, time.process_time() - cpu


def time_interleaved(calls: Mapping[str, tuple[Callable, tuple]], *, repeats: int = 7,
                     budget: float = math.inf) -> dict[str, tuple[object, Timing]]:
    """Time several functions together, round-robin: `{name: (call, args)}` -> `{name: (first
    output, Timing)}`.

    Every `call(*args)` is called once to warm up, in the order given; then rounds follow,
    each calling every function still being timed once, in the same order, until each has
    `repeats` timed calls. A function stops early once its timed calls have taken `budget`
    seconds of wall time (at least one timed call); one whose warm-up call took longer than
    `budget` is timed by that call alone. Each call is timed by wall time and by the CPU time
    of the process, side by side; the medians of both are in the `Timing`
    (`median_seconds`, `median_cpu_seconds`).

    Example:
        >>> from experiments.harness.metrics import time_interleaved
        >>> order = []
        >>> timed = time_interleaved({"a": (lambda: order.append("a"), ()), "b": (lambda: order.append("b"), ())},
        ...                          repeats=2)
        >>> "".join(order), len(timed["a"][1].calls), len(timed["b"][1].cpu_calls)
        ('ababab', 2, 2)
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1; got {repeats}")
    first, warm, wall, cpu = {}, {}, {name: [] for name in calls}, {name: [] for name in calls}
    for name, (call, args) in calls.items():
        first[name], seconds, cpu_seconds = _clocked(call, args)
        warm[name] = (seconds, cpu_seconds)
        if seconds > budget:
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)

    def timing_continues(name):
        return len(wall[name]) < repeats and (not wall[name] or sum(wall[name]) < budget)

    active = [name for name in calls if timing_continues(name)]
    while active:
        for name in active:
            call, args = calls[name]
            _, seconds, cpu_seconds = _clocked(call, args)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
        active = [name for name in active if timing_continues(name)]
    return {name: (first[name], Timing(None, statistics.median(wall[name]), tuple(wall[name]),
                                       cpu_calls=tuple(cpu[name]), warmup_seconds=warm[name][0],
                                       warmup_cpu_seconds=warm[name][1], cut_by_budget=len(wall[name]) < repeats))
            for name in calls}


def time_calls(call: Callable, args: tuple, *, repeats: int = 5, budget: float = 1.0,
               compile_seconds: float | None = None, memory: dict | None = None) -> tuple[object, Timing]:
    """`call(*args)` once to warm up, then up to `repeats` timed calls (stopping after `budget`
    seconds, at least one); returns the first output and the `Timing` (`time_interleaved`
    of one function).

    A warm-up call slower than `budget` is itself the one timed call: `call` is
    already compiled, so it measures the method, not the compiler. With
    `budget=math.inf`, exactly `repeats` calls are timed.
    """
    out, timing = time_interleaved({"call": (call, args)}, repeats=max(1, repeats), budget=budget)["call"]
    return out, dataclasses.replace(timing, compile_seconds=compile_seconds, memory=memory)


def run_timed(
    fn: Callable, args: tuple, *, compile: bool = True, repeats: int = 5, budget: float = 1.0
) -> tuple[object, Timing]:
    """`fn(*args)` (compiled with XLA when `compile`), warm, timed; returns `(output, Timing)`.

    Example:
        >>> from experiments import harness
        >>> out, timing = harness.run_timed(lambda x: jnp.sin(x) ** 2, (jnp.ones(3),), repeats=3, budget=10.0)
        >>> len(timing.calls), timing.median_seconds > 0, timing.memory["temp_bytes"] >= 0
        (3, True, True)
    """
    if compile:
        executable, seconds, memory = compile_program(fn, args)
        return time_calls(executable, args, repeats=repeats, budget=budget, compile_seconds=seconds, memory=memory)
    return time_calls(fn, args, repeats=repeats, budget=budget)
