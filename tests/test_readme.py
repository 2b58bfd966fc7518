"""The README's Python examples run as printed."""

import re
from pathlib import Path

import jax.numpy as jnp

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block(after_heading: str) -> str:
    text = README.read_text()
    section = text[text.index(after_heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_optax_training_example_trains():
    """The optax example: 200 Adam steps through `integrators.solve` lower the loss
    at least tenfold (it starts near 1 and a quarter turn is learnable by the field)."""
    namespace: dict = {}
    exec(_python_block("## Least-action gradients inside `jax.grad`"), namespace)
    first = float(namespace["loss"](namespace["field"].init(namespace["jax"].random.key(0))))
    last = float(namespace["value"])
    assert jnp.isfinite(last) and last < 0.1 * first
