"""Test configuration: float64 by default, shared PRNG keys."""

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture
def key():
    return jax.random.key(20260223)
