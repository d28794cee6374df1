"""Clipping by value and by global norm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference


def tree(seed, scale):
    rng = np.random.default_rng(seed)
    return {"a": scale * rng.standard_normal((4, 3)), "b": [scale * rng.standard_normal(5)]}


def as_jnp(t, dtype=jnp.float32):
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), t)


@pytest.mark.parametrize("scale", [0.01, 10.0])
def test_clip_by_global_norm_matches_reference(scale, maybe_jit):
    g = tree(0, scale)
    tx = gradtx.clip_by_global_norm(1.0)
    out, _ = maybe_jit(tx.update)(as_jnp(g), tx.init(None))
    leaves = jax.tree.leaves(g)
    want = reference.clip_by_global_norm(leaves, 1.0)
    for got, exp in zip(jax.tree.leaves(out), want, strict=True):
        np.testing.assert_allclose(got, exp, rtol=1e-6)


def test_below_threshold_is_bitwise_unchanged():
    g = as_jnp(tree(1, 0.01))
    tx = gradtx.clip_by_global_norm(1.0)
    out, _ = jax.jit(tx.update)(g, tx.init(None))
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(g), strict=True):
        np.testing.assert_array_equal(a, b)


def test_above_threshold_norm_is_exactly_max_norm():
    g = as_jnp(tree(2, 100.0))
    tx = gradtx.clip_by_global_norm(1.0)
    out, _ = tx.update(g, tx.init(None))
    np.testing.assert_allclose(float(gradtx.global_norm(out)), 1.0, rtol=2e-7)


def test_zero_gradients_stay_zero_and_differentiate_safely():
    g = as_jnp(jax.tree.map(np.zeros_like, tree(3, 1.0)))
    tx = gradtx.clip_by_global_norm(1.0)
    out, _ = tx.update(g, tx.init(None))
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(out))
    grad = jax.grad(lambda t: gradtx.global_norm(t))(g)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(grad))


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_non_finite_norm_poisons_every_update(bad):
    # Policy: a non-finite global norm turns every update into NaN (never a partial step).
    g = tree(4, 1.0)
    g["a"][0, 0] = bad
    tx = gradtx.clip_by_global_norm(1.0)
    out, _ = jax.jit(tx.update)(as_jnp(g), tx.init(None))
    assert all(np.all(np.isnan(np.asarray(x))) for x in jax.tree.leaves(out))


def test_global_norm_of_bf16_accumulates_in_float32():
    x = jnp.full((4096,), 1.0, jnp.bfloat16)  # a bf16 accumulator would stall at 256
    norm = gradtx.global_norm({"x": x})
    assert norm.dtype == jnp.float32
    assert float(norm) == 64.0


def test_bf16_updates_stay_bf16():
    g = as_jnp(tree(5, 10.0), jnp.bfloat16)
    tx = gradtx.clip_by_global_norm(1.0)
    out, _ = tx.update(g, tx.init(None))
    assert {x.dtype for x in jax.tree.leaves(out)} == {jnp.dtype(jnp.bfloat16)}
    np.testing.assert_allclose(float(gradtx.global_norm(out)), 1.0, rtol=1e-2)


def test_clip_by_value(maybe_jit):
    g = tree(6, 3.0)
    tx = gradtx.clip(0.5)
    out, _ = maybe_jit(tx.update)(as_jnp(g), tx.init(None))
    for got, raw in zip(jax.tree.leaves(out), jax.tree.leaves(g), strict=True):
        np.testing.assert_allclose(got, np.clip(raw, -0.5, 0.5), rtol=1e-7)


def test_global_norm_of_empty_tree_is_zero():
    assert float(gradtx.global_norm({})) == 0.0


@pytest.mark.parametrize(("bad", "want"), [(np.nan, np.nan), (np.inf, np.inf)])
def test_global_norm_propagates_non_finite(bad, want):
    norm = float(gradtx.global_norm({"a": jnp.array([bad, 1.0]), "b": jnp.array([2.0])}))
    np.testing.assert_equal(norm, want)
