"""Running one comparison in several worker processes, family by family.

Tracing and lowering a JAX program runs Python under the GIL, and it is most
of the cost of a cold comparison (a few hundred small programs), so threads
cannot spread it over the cores; processes can. `compare_in_processes` groups
the selected problems into whole families (problems of one family share their
re-discretised targets, their programs and their continuous reference, so they
stay together), starts `processes` workers (``python -m
experiments.harness.processes``: nothing of the caller's script is re-imported,
so no ``if __name__ == "__main__"`` guard is needed) and hands the families out
as a work queue, heaviest first (by the number of programs each needs): a
worker that finishes one family gets the next, so the workers finish within
about one light family of each other. The cells are merged back into the
order a single process would give.

Each worker process is pinned to one core (`os.sched_setaffinity`, where the
platform has it; worker `i` gets the `i`-th core the caller may use), so XLA
sizes its thread pools to one thread: two workers then time their programs on
a core each instead of competing for both, and the reported times are
single-threaded (`Comparison.processes` gives each worker's cores, as the worker
read them). `XLA_FLAGS` cannot do this in jax 0.10: with
``--xla_cpu_multi_thread_eigen=false`` a 1500 x 1500 matrix product still ran
on two threads (0.38 s wall, 0.75 s CPU for ten), pinned it runs on one (0.80 s,
0.80 s). The compiler settings of the timed and the untimed programs are in
`experiments.harness.comparison` (`TIMED_COMPILER_OPTIONS`,
`REFERENCE_COMPILER_OPTIONS`).
"""

from __future__ import annotations

import collections
import json
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


def cores() -> list[int] | None:
    """The cores this process may run on (`os.sched_getaffinity`), `None` where the platform
    does not say (workers are then not pinned)."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    return sorted(os.sched_getaffinity(0))


_PREFIX = "@leastaction-compare "
"""Lines a worker prints for the parent (progress and log); other output is ignored."""


def families(problems: Sequence, method_names: Sequence[str]) -> list[list[str]]:
    """The names of `problems` (built `Problem`s or registry `ProblemSpec`s) grouped by family,
    heaviest family first, each group in the order of `problems`.

    The weight of a family is the number of programs it needs: every method on every member,
    plus, on an ODE family, a re-discretised target and its reference per distinct scheme
    program (tableaux of one stage structure share one, `integrators.RungeKutta.structure`).
    """
    import integrators

    from . import methods as method_registry

    schemes = [method_registry.METHODS[m] for m in method_names
               if isinstance(method_registry.METHODS[m], method_registry.LeastActionScheme)]
    programs = set()
    for method in schemes:
        tab = integrators.TABLEAUX.get(method.scheme)
        programs.add(method.scheme if tab is None else (tab.stages, tab.explicit))
    others = len(method_names) - len(schemes)
    weights: dict[str, int] = {}
    for problem in problems:
        weights[problem.family] = weights.get(problem.family, 2 * len(programs) if problem.is_ode else 0) + others
    heaviest = sorted(weights, key=lambda f: -weights[f])  # stable: ties keep the order of `problems`
    return [[p.name for p in problems if p.family == family] for family in heaviest]


def _worker(spec_path: Path) -> None:
    """Run the families named on stdin (one JSON list of problem names per line), each pickling
    its `Comparison` to a numbered file next to `spec_path` and announcing it; exit at end of input."""
    spec = pickle.loads(spec_path.read_bytes())
    if spec.get("core") is not None:  # before XLA sizes its thread pools
        os.sched_setaffinity(0, {spec["core"]})
    import jax

    import experiments  # noqa: F401  (turns on float64)

    from .comparison import compare, enable_compilation_cache

    if spec["cache_dir"]:
        enable_compilation_cache(spec["cache_dir"])
    del jax

    def say(kind: str, text: str) -> None:
        print(_PREFIX + kind + " " + text.replace("\n", " "), flush=True)

    for number, line in enumerate(sys.stdin):
        comparison = compare(problems=json.loads(line), methods=spec["methods"], processes=1, workers=1,
                             progress=lambda done, total, text: say("progress", text),
                             log=lambda line: say("log", line), **spec["options"])
        comparison.processes = [{"cores": cores()}]
        result = spec_path.with_suffix(f".{number}.result")
        result.write_bytes(pickle.dumps(comparison))
        say("done", str(result))


def _read_lines(index: int, stream, messages: queue_module.Queue) -> None:
    for line in stream:
        if line.startswith(_PREFIX):
            kind, _, text = line[len(_PREFIX):].rstrip("\n").partition(" ")
            messages.put((index, kind, text))
    messages.put((index, "exit", ""))


class _Worker:
    """One worker process, the families it was given, and when it last finished one."""

    def __init__(self, index: int, scratch: Path, spec: dict, messages: queue_module.Queue):
        self.spec = scratch / f"worker{index}.spec"
        self.spec.write_bytes(pickle.dumps(spec))
        self.stderr = open(scratch / f"worker{index}.stderr", "w+")
        self.given: list[list[str]] = []
        self.results: list[Path] = []
        self.process = subprocess.Popen([sys.executable, "-m", "experiments.harness.processes", str(self.spec)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                        text=True)
        self.reader = threading.Thread(target=_read_lines, args=(index, self.process.stdout, messages), daemon=True)
        self.reader.start()
        self.seconds = 0.0

    def give(self, family: list[str] | None) -> None:
        """Hand over `family`, or close the queue (`None`)."""
        try:
            if family is None:
                self.process.stdin.close()
            else:
                self.given.append(family)
                self.process.stdin.write(json.dumps(family) + "\n")
                self.process.stdin.flush()
        except BrokenPipeError:  # the worker has died: its exit is reported with its error output
            pass

    def failure(self) -> str:
        self.stderr.seek(0)
        families = ", ".join(n for family in self.given for n in family)
        return (f"comparison worker for {families} failed (exit {self.process.returncode}):\n"
                f"{self.stderr.read()[-3000:]}")


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
    pending = collections.deque(families(problems, method_names))
    total, done = 2 * len(problem_names) * len(method_names), 0
    available = cores()
    messages: queue_module.Queue = queue_module.Queue()
    spec = {"methods": list(method_names), "options": options, "cache_dir": jax.config.jax_compilation_cache_dir}
    with tempfile.TemporaryDirectory(prefix="leastaction-compare-") as scratch:
        workers = []
        for index in range(min(processes, len(pending))):
            core = None if available is None else available[index % len(available)]
            worker = _Worker(index, Path(scratch), dict(spec, core=core), messages)
            worker.give(pending.popleft())
            workers.append(worker)
        running = len(workers)
        try:
            while running:
                index, kind, text = messages.get()
                worker = workers[index]
                if kind == "progress":
                    done += 1
                    progress(done, total, text)
                elif kind == "log":
                    log(text)
                elif kind == "done":
                    worker.results.append(Path(text))
                    worker.seconds = time.perf_counter() - started
                    worker.give(pending.popleft() if pending else None)
                else:  # the worker's output ended
                    running -= 1
                    if worker.process.wait() != 0 or len(worker.results) != len(worker.given):
                        raise RuntimeError(worker.failure())
            parts = [(worker, [pickle.loads(path.read_bytes()) for path in worker.results]) for worker in workers]
        finally:
            for worker in workers:
                if worker.process.poll() is None:
                    worker.process.kill()
                worker.process.wait()
                worker.stderr.close()

    comparisons = [c for _, results in parts for c in results]
    by_pair = {(c.method, c.problem): c for part in comparisons for c in part.cells}
    summaries = {name: info for part in comparisons for name, info in part.problems.items()}
    first = comparisons[0]
    return Comparison(
        dtype=first.dtype,
        reference=first.reference,
        seed=first.seed,
        compiler_options=first.compiler_options,
        problems={name: summaries[name] for name in problem_names},
        methods=first.methods,
        cells=[by_pair[(m, p)] for p in problem_names for m in method_names],
        wall_seconds=time.perf_counter() - started,
        phase_seconds={f"{phase} (slowest process)": max(sum(c.phase_seconds[phase] for c in results)
                                                         for _, results in parts)
                       for phase in ("trace", "compile", "measure")},
        processes=[{"problems": [n for family in worker.given for n in family], "wall_seconds": worker.seconds,
                    "cores": results[0].processes[0]["cores"] if results else None}
                   for worker, results in parts],
    )


if __name__ == "__main__":  # a worker: python -m experiments.harness.processes SPEC (families on stdin)
    _worker(Path(sys.argv[1]))
