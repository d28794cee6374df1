"""Test configuration: strict dtype promotion and rank promotion "raise" for the whole suite."""

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(params=["eager", "jit"])
def maybe_jit(request):
    """Runs a function as is, or under `jax.jit`."""
    return (lambda f: f) if request.param == "eager" else jax.jit
