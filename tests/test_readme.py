"""The README's Python examples run as printed, each in a fresh interpreter (as a reader runs
them: no float64 switched on by this test suite) with every warning turned into an error."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(after_heading: str) -> list[str]:
    """The ```python blocks of the section that starts at `after_heading` (up to the next `## `)."""
    text = README.read_text()
    start = text.index(after_heading)
    end = text.find("\n## ", start + len(after_heading))
    return re.findall(r"```python\n(.*?)```", text[start:end if end >= 0 else None], re.S)


def _run(code: str, tmp_path) -> str:
    """Run `code` with `python -W error` from an empty folder, importing this checkout; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env["PYTHONPATH"] = str(README.parent)
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Warning" not in done.stderr, done.stderr[-3000:]
    return done.stdout


def test_every_python_block_is_tested():
    text = README.read_text()
    sections = ["## Least-action gradients inside `jax.grad`", "## Use it from Python", "## Hamiltonian echo learning"]
    found = sum(len(_python_blocks(s)) for s in sections)
    assert found == text.count("```python") == 4


# Each example runs in a fresh interpreter that compiles everything anew (10-15 s on one core): the
# default suite runs the library examples; the optax and echo examples run with `pytest -m slow`.


@pytest.mark.slow
def test_optax_training_example_trains(tmp_path):
    """The optax example: 200 Adam steps through `integrators.diffeqsolve` lower the loss at
    least tenfold (it starts near 1 and a quarter turn is learnable by the field)."""
    (block,) = _python_blocks("## Least-action gradients inside `jax.grad`")
    check = ("\nfirst = float(loss(eqx.nn.MLP(2, 2, 16, 1, activation=jnp.tanh, key=jax.random.key(0))))\n"
             "print(first, float(value))\nassert jnp.isfinite(value) and value < 0.1 * first\n")
    first, last = map(float, _run(block + check, tmp_path).split())
    assert last < 0.1 * first


def test_library_examples_run_and_the_new_system_sweeps(tmp_path):
    """The sweep example and the `Swish` system (the second block continues the first); the new
    system's least-action gradient equals `jax.grad` of its forward pass."""
    blocks = _python_blocks("## Use it from Python")
    assert len(blocks) == 2
    check = """
swish = Swish(dim=3, depth=4)
theta_s = swish.init(jax.random.key(2))
xs = jax.random.normal(jax.random.key(3), (5, 3))
loss_s = L.SquaredError(target=0.0)
exact = jax.grad(lambda th: loss_s(I.output(swish, th, xs)))(theta_s)
error = float(jnp.max(jnp.abs(I.sweep(swish, theta_s, xs, loss_s).grad["W"] - exact["W"])))
print(error)
"""
    assert float(_run("".join(blocks) + check, tmp_path)) < 1e-12


@pytest.mark.slow
def test_hamiltonian_echo_example_runs(tmp_path):
    (block,) = _python_blocks("## Hamiltonian echo learning")
    _run(block + "\nprint(len(curve))\n", tmp_path)
