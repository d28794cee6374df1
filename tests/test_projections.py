"""Projections onto the non-negative orthant, a box, the L2 ball and the simplex."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference


def test_projection_non_negative(maybe_jit):
    x = {"a": jnp.asarray([-1.5, 0.0, 2.0, jnp.nan]), "b": jnp.asarray(-3.0, jnp.bfloat16)}
    out = maybe_jit(gradtx.projection_non_negative)(x)
    np.testing.assert_array_equal(out["a"], [0.0, 0.0, 2.0, np.nan])
    assert out["b"].dtype == jnp.bfloat16 and float(out["b"]) == 0.0


def test_projection_box_scalar_and_tree_bounds(maybe_jit):
    rng = np.random.default_rng(0)
    x = {"w": rng.standard_normal((4, 3)) * 3, "b": rng.standard_normal(3) * 3}
    xj = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), x)
    out = maybe_jit(lambda t: gradtx.projection_box(t, -1.0, 2.0))(xj)
    for k in x:
        np.testing.assert_allclose(out[k], np.minimum(np.maximum(x[k], -1.0), 2.0), rtol=1e-6)
    lower = {"w": jnp.zeros((4, 3)), "b": -1.0}
    upper = {"w": jnp.full((4, 3), 0.5), "b": jnp.asarray([0.0, 1.0, 2.0])}
    out = maybe_jit(gradtx.projection_box)(xj, lower, upper)
    np.testing.assert_allclose(out["w"], np.clip(x["w"], 0.0, 0.5), rtol=1e-6)
    np.testing.assert_allclose(out["b"], np.clip(x["b"], -1.0, [0.0, 1.0, 2.0]), rtol=1e-6)
    bf16 = gradtx.projection_box(jnp.asarray([-2.0, 0.3], jnp.bfloat16), 0.0, 1.0)
    assert bf16.dtype == jnp.bfloat16


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: gradtx.projection_box(jnp.ones(2), 1.0, 0.0),
            "projection_box: `lower` must be <= `upper` (the box is empty), got lower=1.0, upper=0.0.",
        ),
        (
            lambda: gradtx.projection_box({"w": jnp.ones(2)}, {"w": jnp.asarray([0.0, 2.0])}, 1.0),
            "projection_box: `lower` must be <= `upper` (the box is empty), but lower > upper for tree['w'].",
        ),
        (
            lambda: gradtx.projection_box({"w": jnp.ones(2)}, {"v": 0.0}, 1.0),
            "projection_box: `lower` and `tree` have different tree structures: tree['w'] has no counterpart in `lower`. Give `lower` as a scalar or as a tree like `tree`.",
        ),
        (
            lambda: gradtx.projection_box({"w": jnp.ones(2)}, 0.0, {"w": jnp.ones(3)}),
            "projection_box: upper['w'] has shape (3,), but tree['w'] has shape (2,). Give `upper` as a scalar or as a tree like `tree`.",
        ),
    ],
)
def test_projection_box_errors(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


def test_projection_l2_ball(maybe_jit):
    rng = np.random.default_rng(1)
    x = {"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(3), "s": np.float64(2.0)}
    xj = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), x)
    norm = np.sqrt(sum(np.sum(v * v) for v in x.values()))
    out = maybe_jit(lambda t: gradtx.projection_l2_ball(t, 2.0))(xj)
    for k in x:
        np.testing.assert_allclose(out[k], x[k] * 2.0 / norm, rtol=1e-6)
    inside = maybe_jit(lambda t: gradtx.projection_l2_ball(t, 10.0))(xj)
    for k in x:
        np.testing.assert_array_equal(inside[k], xj[k])  # bit-for-bit unchanged inside
    with pytest.raises(ValueError) as info:
        gradtx.projection_l2_ball(xj, 0.0)
    assert str(info.value) == "projection_l2_ball: `scale` must be > 0, got 0.0."


def assert_simplex_kkt(v, p, scale, atol):
    """p is the projection of v onto {p >= 0, sum p = scale}: the KKT conditions hold.

    There is a theta with p_i = v_i - theta where p_i > 0 and v_i <= theta where p_i = 0.
    """
    v, p = np.asarray(v, np.float64).ravel(), np.asarray(p, np.float64).ravel()
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(), scale, rtol=1e-5)
    positive = p > 0
    theta = v[positive] - p[positive]
    np.testing.assert_allclose(theta, theta.mean(), atol=atol)
    assert np.all(v[~positive] <= theta.mean() + atol)


@pytest.mark.parametrize("seed", range(8))
def test_projection_simplex_matches_reference_and_kkt(seed):
    rng = np.random.default_rng(seed)
    n = [1, 2, 7, 33][seed % 4]  # few shapes, few compilations
    v = rng.standard_normal(n) * float(rng.choice([0.1, 1.0, 10.0])) + float(rng.normal())
    scale = float(rng.choice([1.0, 0.3, 5.0]))
    got = jax.jit(gradtx.projection_simplex)(jnp.asarray(v, jnp.float32), scale)
    want = reference.projection_simplex(v, scale)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(want, reference.projection_simplex_bisection(v, scale), atol=1e-9)
    assert_simplex_kkt(v, got, scale, atol=1e-5 * max(1.0, np.abs(v).max()))


def test_projection_simplex_special_cases():
    # A point on the simplex is its own projection; ties are shared; one entry gets all.
    simplex = jax.jit(gradtx.projection_simplex)
    np.testing.assert_allclose(
        gradtx.projection_simplex(jnp.asarray([0.2, 0.3, 0.5])), [0.2, 0.3, 0.5], rtol=1e-6
    )
    np.testing.assert_allclose(simplex(jnp.full(4, 7.0)), [0.25] * 4)
    np.testing.assert_allclose(simplex(jnp.asarray([-5.0]), 2.0), [2.0])
    np.testing.assert_allclose(
        gradtx.projection_simplex(jnp.asarray([10.0, 0.0, -1.0])), [1.0, 0.0, 0.0]
    )


def test_projection_simplex_of_a_tree_is_joint():
    rng = np.random.default_rng(9)
    x = {"a": rng.standard_normal((2, 3)), "b": [rng.standard_normal(4), np.float64(1.5)]}
    xj = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), x)
    out = gradtx.projection_simplex(xj, 3.0)
    flat = np.concatenate([np.ravel(v) for v in jax.tree.leaves(x)])
    want = reference.projection_simplex(flat, 3.0)
    got = np.concatenate([np.ravel(np.asarray(v)) for v in jax.tree.leaves(out)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert jax.tree.structure(out) == jax.tree.structure(xj)
    assert out["b"][1].shape == ()


def test_projection_simplex_bf16_is_computed_in_float32():
    v = np.random.default_rng(10).standard_normal(16)
    out = gradtx.projection_simplex(jnp.asarray(v, jnp.bfloat16))
    assert out.dtype == jnp.bfloat16
    want = reference.projection_simplex(np.asarray(jnp.asarray(v, jnp.bfloat16), np.float64))
    np.testing.assert_allclose(np.asarray(out, np.float64), want, rtol=1e-2, atol=4e-3)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: gradtx.projection_simplex(jnp.ones(3), -1.0),
            ValueError,
            "projection_simplex: `scale` must be > 0, got -1.0.",
        ),
        (
            lambda: gradtx.projection_simplex(jnp.ones(0)),
            ValueError,
            "projection_simplex: `tree` has no entries; the simplex needs at least one.",
        ),
        (
            lambda: gradtx.projection_simplex({"k": jnp.ones(2, jnp.int32)}),
            TypeError,
            "projection_simplex: tree['k'] has dtype int32; optimizers need floating-point leaves. Keep integer leaves out of the optimized tree (e.g. with `gradtx.partition` or by splitting the params).",
        ),
    ],
)
def test_projection_simplex_errors(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message
