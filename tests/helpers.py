"""Shared test utilities (no assertions about gradtx live here)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import gradtx


def random_grads(seed: int, shape=(5, 3), steps: int = 12, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    return [scale * rng.standard_normal(shape) for _ in range(steps)]


def trajectory(tx: gradtx.GradientTransformation, theta0, grads, dtype=jnp.float32):
    """Parameters after each step of `tx` fed with `grads`, as float64 NumPy arrays."""
    params = {"w": jnp.asarray(theta0, dtype)}
    state = tx.init(params)

    @jax.jit
    def step(params, state, g):
        updates, state = tx.update({"w": g}, state, params)
        return gradtx.apply_updates(params, updates), state

    out = []
    for g in grads:
        params, state = step(params, state, jnp.asarray(g, dtype))
        out.append(np.asarray(params["w"], np.float64))
    return out


def assert_trajectories_close(actual, expected, rtol=1e-5, atol=1e-6):
    assert len(actual) == len(expected)
    for t, (a, e) in enumerate(zip(actual, expected, strict=True)):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"step {t}")


def tree_trajectories(
    tx: gradtx.GradientTransformation, theta0: dict, grads: list, dtype=jnp.float32
):
    """Like `trajectory` for a dict of leaves fed together: {name: list of float64 arrays}.

    `grads` is a list (one per step) of dicts shaped like `theta0`. Layer-wise and factored
    methods depend on each leaf's shape; running several leaves in one tree also checks that
    the transformation keeps them apart.
    """
    params = {k: jnp.asarray(v, dtype) for k, v in theta0.items()}
    state = tx.init(params)

    @jax.jit
    def step(params, state, g):
        updates, state = tx.update(g, state, params)
        return gradtx.apply_updates(params, updates), state

    out = {k: [] for k in theta0}
    for g in grads:
        params, state = step(params, state, {k: jnp.asarray(v, dtype) for k, v in g.items()})
        for k in theta0:
            out[k].append(np.asarray(params[k], np.float64))
    return out
