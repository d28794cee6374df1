"""Optimistic gradient descent: the published rule, and the bilinear game where GDA fails."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference
from tests.helpers import assert_trajectories_close, random_grads, trajectory

THETA0 = np.random.default_rng(0).standard_normal((5, 3))


@pytest.mark.parametrize(
    ("kwargs", "ref_kwargs"),
    [
        ({"learning_rate": 0.1}, {"learning_rate": 0.1}),
        (
            {"learning_rate": 0.05, "alpha": 0.5, "beta": 2.0},
            {"learning_rate": 0.05, "alpha": 0.5, "beta": 2.0},
        ),
        (
            {"learning_rate": gradtx.linear_schedule(0.1, 0.01, 10), "beta": 0.0},
            {"learning_rate": lambda t: reference.linear(t, 0.1, 0.01, 10), "beta": 0.0},
        ),
    ],
)
def test_optimistic_gradient_descent_matches_reference(kwargs, ref_kwargs):
    grads = random_grads(1, steps=12)
    got = trajectory(gradtx.optimistic_gradient_descent(**kwargs), THETA0, grads)
    assert_trajectories_close(got, reference.optimistic_gd(THETA0, grads, **ref_kwargs))


def test_first_step_uses_the_current_gradient_twice():
    # g_{-1} = g_0: the first direction is alpha * g_0; then (alpha + beta) g_1 - beta g_0.
    tx = gradtx.scale_by_optimistic_gradient(alpha=0.5, beta=2.0)
    params = {"w": jnp.zeros(2)}
    state = tx.init(params)
    u, state = tx.update({"w": jnp.array([1.0, -2.0])}, state)
    np.testing.assert_allclose(u["w"], [0.5, -1.0])
    u, state = tx.update({"w": jnp.array([3.0, 1.0])}, state)
    np.testing.assert_allclose(u["w"], [2.5 * 3.0 - 2.0 * 1.0, 2.5 * 1.0 - 2.0 * -2.0])


def play_bilinear_game(tx, steps):
    """min_x max_y x * y from (1, 1): descend in x on y, ascend in y on x (gradient -x)."""
    params = {"x": jnp.array(1.0), "y": jnp.array(1.0)}

    def body(carry, _):
        params, state = carry
        updates, state = tx.update({"x": params["y"], "y": -params["x"]}, state, params)
        return (gradtx.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
    return float(jnp.hypot(params["x"], params["y"]))


def test_bilinear_game_ogd_converges_where_gda_diverges():
    # Simultaneous gradient descent-ascent multiplies the distance to the equilibrium (0, 0) by
    # sqrt(1 + lr^2) every step; optimistic GD contracts it.
    lr, steps = 0.2, 500
    gda = play_bilinear_game(gradtx.sgd(lr), steps)
    np.testing.assert_allclose(gda, np.sqrt(2) * (1 + lr**2) ** (steps / 2), rtol=1e-3)
    assert play_bilinear_game(gradtx.optimistic_gradient_descent(lr), steps) < 1e-3


def test_bad_hyperparameters():
    with pytest.raises(ValueError) as e:
        gradtx.optimistic_gradient_descent(0.1, alpha=-1.0)
    assert str(e.value) == "scale_by_optimistic_gradient: `alpha` must be >= 0, got -1.0."
    tx = gradtx.scale_by_optimistic_gradient()
    state = tx.init({"w": jnp.ones(2)})
    with pytest.raises(
        ValueError, match=r"^scale_by_optimistic_gradient: updates\['w'\] has shape"
    ):
        tx.update({"w": jnp.ones(3)}, state)
