"""Running one comparison in several worker processes, split by problem family.

Tracing and lowering a JAX program runs Python under the GIL, and it is most
of the cost of a cold comparison (a few hundred small programs), so threads
cannot spread it over the cores; processes can. `compare_in_processes` splits
the selected problems into `processes` groups of whole families (problems of
one family share their re-discretised targets and continuous reference, so
they stay together), balanced by the number of programs each family needs,
runs `compare` on each group in a fresh Python process
(``python -m experiments.harness.processes``: nothing of the caller's script is
re-imported, so no ``if __name__ == "__main__"`` guard is needed), and merges
the cells back into the order a single process would give.

Each worker runs XLA on one thread (``intra_op_parallelism_threads=1``):
two workers then time their programs on one core each instead of competing
for both, and the reported times are single-threaded (`Comparison.processes`
says how the comparison was run).
"""

from __future__ import annotations

import os
import pickle
import queue as queue_module
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

SINGLE_THREADED_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
"""`XLA_FLAGS` of a worker process: one XLA thread per process."""

_PREFIX = "@leastaction-compare "
"""Lines a worker prints for the parent (progress and log); other output is ignored."""


def partition(problems: Sequence, method_names: Sequence[str], processes: int) -> list[list[str]]:
    """The names of `problems` (built `Problem`s or registry `ProblemSpec`s) in at most
    `processes` groups of whole families, balanced by the programs each family needs (every
    method on every member, plus, on an ODE family, one re-discretised target and its
    reference per scheme method), the heaviest family first into the lightest group
    (longest-processing-time scheduling); each group keeps the order of `problems`."""
    from . import methods as method_registry

    schemes = sum(isinstance(method_registry.METHODS[m], method_registry.LeastActionScheme) for m in method_names)
    others = len(method_names) - schemes
    weights: dict[str, int] = {}
    for problem in problems:
        weights[problem.family] = weights.get(problem.family, 2 * schemes if problem.is_ode else 0) + others
    groups: list[tuple[int, list[str]]] = [(0, []) for _ in range(max(1, processes))]
    for family in sorted(weights, key=lambda f: -weights[f]):
        load, members = min(groups, key=lambda g: g[0])
        groups.remove((load, members))
        groups.append((load + weights[family], members + [p.name for p in problems if p.family == family]))
    order = [p.name for p in problems]
    return [sorted(members, key=order.index) for _, members in groups if members]


def _worker(job: Path) -> None:
    """Run one group (the pickled job file `job`) and pickle its `Comparison` next to it."""
    spec = pickle.loads(job.read_bytes())
    import jax

    import experiments  # noqa: F401  (turns on float64)

    from .comparison import compare, enable_compilation_cache

    if spec["cache_dir"]:
        enable_compilation_cache(spec["cache_dir"])
    del jax

    def say(kind: str, text: str) -> None:
        print(_PREFIX + kind + " " + text.replace("\n", " "), flush=True)

    comparison = compare(problems=spec["problems"], methods=spec["methods"], processes=1, workers=1,
                         progress=lambda done, total, text: say("progress", text),
                         log=lambda line: say("log", line), **spec["options"])
    job.with_suffix(".result").write_bytes(pickle.dumps(comparison))


def _read_lines(stream, messages: queue_module.Queue) -> None:
    for line in stream:
        if line.startswith(_PREFIX):
            kind, _, text = line[len(_PREFIX):].rstrip("\n").partition(" ")
            messages.put((kind, text))


def compare_in_processes(
    problems: Sequence,
    method_names: Sequence[str],
    processes: int,
    options: dict,
    progress: Callable[[int, int, str], None],
    log: Callable[[str], None],
):
    """`compare` over `problems` (registered `Problem`s) x `method_names` in `processes`
    worker processes; the merged `Comparison`. `options` are `compare`'s remaining keywords.
    A worker that fails raises a `RuntimeError` with the end of its error output."""
    import jax

    from .comparison import Comparison

    started = time.perf_counter()
    problem_names = [p.name for p in problems]
    groups = partition(problems, method_names, processes)
    total, done = 2 * len(problem_names) * len(method_names), 0
    environment = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + SINGLE_THREADED_XLA).strip())
    messages: queue_module.Queue = queue_module.Queue()
    with tempfile.TemporaryDirectory(prefix="leastaction-compare-") as scratch:
        workers = []
        for index, group in enumerate(groups):
            job = Path(scratch) / f"part{index}.job"
            job.write_bytes(pickle.dumps({"problems": group, "methods": list(method_names), "options": options,
                                          "cache_dir": jax.config.jax_compilation_cache_dir}))
            errors = open(Path(scratch) / f"part{index}.stderr", "w+")
            process = subprocess.Popen([sys.executable, "-m", "experiments.harness.processes", str(job)],
                                       stdout=subprocess.PIPE, stderr=errors, text=True, env=environment)
            reader = threading.Thread(target=_read_lines, args=(process.stdout, messages), daemon=True)
            reader.start()
            workers.append((job, process, reader, errors))
        while True:
            running = any(process.poll() is None for _, process, _, _ in workers)
            try:
                while True:
                    kind, text = messages.get(timeout=0.2)
                    if kind == "progress":
                        done += 1
                        progress(done, total, text)
                    else:
                        log(text)
            except queue_module.Empty:
                pass
            if not running:
                break
        parts = []
        for job, process, reader, errors in workers:
            reader.join()
            errors.seek(0)
            message = errors.read()
            errors.close()
            if process.returncode != 0 or not job.with_suffix(".result").exists():
                raise RuntimeError(f"comparison worker for {', '.join(pickle.loads(job.read_bytes())['problems'])} "
                                   f"failed (exit {process.returncode}):\n{message[-3000:]}")
            parts.append(pickle.loads(job.with_suffix(".result").read_bytes()))
    while not messages.empty():
        kind, text = messages.get()
        if kind == "log":
            log(text)

    by_pair = {(c.method, c.problem): c for part in parts for c in part.cells}
    summaries = {name: info for part in parts for name, info in part.problems.items()}
    return Comparison(
        dtype=parts[0].dtype,
        reference=parts[0].reference,
        seed=parts[0].seed,
        problems={name: summaries[name] for name in problem_names},
        methods=parts[0].methods,
        cells=[by_pair[(m, p)] for p in problem_names for m in method_names],
        wall_seconds=time.perf_counter() - started,
        phase_seconds={f"{phase} (slowest process)": max(part.phase_seconds[phase] for part in parts)
                       for phase in ("trace", "compile", "measure")},
        processes=[{"problems": group, "wall_seconds": part.wall_seconds} for group, part in zip(groups, parts)],
    )


if __name__ == "__main__":  # a worker: python -m experiments.harness.processes JOB
    _worker(Path(sys.argv[1]))
