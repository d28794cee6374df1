"""Schedule-free SGD and AdamW against the paper's algorithm transcribed in `reference.py`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference
from tests.helpers import assert_trajectories_close, random_grads

THETA0 = np.random.default_rng(0).standard_normal((5, 3))


def run(tx, grads, dtype=jnp.float32, values=None):
    """The training params y and the evaluation params x after each step (float64)."""
    params = {"w": jnp.asarray(THETA0, dtype)}

    @jax.jit
    def step(params, state, g, kwargs):
        updates, state = tx.update({"w": g}, state, params, **kwargs)
        params = gradtx.apply_updates(params, updates)
        return params, state, gradtx.schedule_free_eval_params(state, params)

    state, ys, xs = tx.init(params), [], []
    for t, g in enumerate(grads):
        kwargs = {} if values is None else {"value": jnp.float32(values[t])}
        params, state, x = step(params, state, jnp.asarray(g, dtype), kwargs)
        ys.append(np.asarray(params["w"], np.float64))
        xs.append(np.asarray(x["w"], np.float64))
    return ys, xs, state


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.1},
        {"learning_rate": 0.2, "warmup_steps": 5, "b1": 0.8, "weight_decay": 0.1},
        {"learning_rate": 0.05, "warmup_steps": 3, "weight_lr_power": 1.0},
    ],
)
def test_schedule_free_sgd_matches_paper(kwargs):
    grads = random_grads(1, steps=12)
    ys, xs, _ = run(gradtx.schedule_free_sgd(**kwargs), grads)
    want_ys, want_xs = reference.schedule_free_sgd(THETA0, grads, **kwargs)
    assert_trajectories_close(ys, want_ys)
    assert_trajectories_close(xs, want_xs, rtol=1e-5, atol=5e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.01},
        {"learning_rate": 0.05, "warmup_steps": 5, "b1": 0.95, "weight_decay": 0.1},
        {"learning_rate": 0.05, "warmup_steps": 4, "b2": 0.99, "eps": 1e-3, "weight_lr_power": 3.0},
    ],
)
def test_schedule_free_adamw_matches_paper(kwargs):
    grads = random_grads(2, steps=12)
    ys, xs, _ = run(gradtx.schedule_free_adamw(**kwargs), grads)
    want_ys, want_xs = reference.schedule_free_adamw(THETA0, grads, **kwargs)
    # y and x mix O(1) iterates (y = (1 - b1) z + b1 x) into values that can be near 0, so
    # their float32 round-off is absolute, a few 1e-7 of the iterates per step.
    assert_trajectories_close(ys, want_ys, rtol=1e-5, atol=5e-6)
    assert_trajectories_close(xs, want_xs, rtol=1e-5, atol=5e-6)


def test_adamw_weights_include_the_bias_correction():
    # The averaging weights are gamma_t^2 with gamma_t = lr * sqrt(1 - b2^t): early steps,
    # with their noisy second moment, weigh less than with weights lr^2.
    tx = gradtx.schedule_free_adamw(0.1, b2=0.9)
    params = {"w": jnp.zeros(2)}
    state = tx.init(params)
    for _ in range(2):
        updates, state = tx.update({"w": jnp.ones(2)}, state, params)
        params = gradtx.apply_updates(params, updates)
    want = 0.1**2 * ((1 - 0.9) + (1 - 0.9**2))
    np.testing.assert_allclose(float(state.weight_sum), want, rtol=1e-6)


def test_wrapper_with_a_schedule_matches_reference():
    sched = gradtx.linear_schedule(0.02, 0.1, 6)
    tx = gradtx.schedule_free(gradtx.sgd(sched), sched, b1=0.7)
    grads = random_grads(3, steps=12)
    ys, xs, _ = run(tx, grads)
    gammas = [reference.linear(t, 0.02, 0.1, 6) for t in range(12)]
    want_ys, want_xs = reference.schedule_free(THETA0, grads, gammas, b1=0.7)
    assert_trajectories_close(ys, want_ys)
    assert_trajectories_close(xs, want_xs, rtol=1e-5, atol=5e-6)


def test_extra_args_reach_the_base_optimizer():
    # Schedule-free Polyak SGD: `value` goes through the wrapper to `scale_by_polyak`.
    tx = gradtx.schedule_free(gradtx.polyak_sgd(max_learning_rate=0.2), 1.0)
    grads = random_grads(4, steps=10)
    values = list(np.random.default_rng(5).uniform(0.5, 2.0, 10))
    ys, _, _ = run(tx, grads, values=values)

    def direction(t, g):
        return min(values[t] / float(np.sum(g * g)), 0.2) * g

    want_ys, _ = reference.schedule_free(THETA0, grads, [1.0] * 10, direction=direction)
    assert_trajectories_close(ys, want_ys)
    params = {"w": jnp.ones((5, 3))}
    with pytest.raises(ValueError, match=r"^scale_by_polyak: this transformation needs the loss"):
        tx.update(params, tx.init(params), params)


def test_eval_params_from_a_chain_state_and_bad_states():
    tx = gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.schedule_free_sgd(0.1))
    params = {"w": jnp.asarray(THETA0, jnp.float32)}
    state = tx.init(params)
    updates, state = tx.update({"w": jnp.ones((5, 3))}, state, params)
    params = gradtx.apply_updates(params, updates)
    sf = state[1]
    want = (np.asarray(params["w"]) - 0.1 * np.asarray(sf.z["w"])) / 0.9
    got = gradtx.schedule_free_eval_params(state, params)["w"]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    for bad, n in [(gradtx.sgd(0.1).init(params), 0), ((sf, sf), 2)]:
        with pytest.raises(ValueError) as e:
            gradtx.schedule_free_eval_params(bad, params)
        assert str(e.value) == (
            "schedule_free_eval_params: `state` must be (or hold exactly one) ScheduleFreeState, "
            f"the state of a `schedule_free` optimizer; found {n}."
        )


def test_state_dtype_and_bf16():
    tx = gradtx.schedule_free_adamw(0.01, state_dtype=jnp.float32)
    params = {"w": jnp.asarray(THETA0, jnp.bfloat16)}
    state = tx.init(params)
    assert state.z["w"].dtype == jnp.float32
    updates, state = tx.update({"w": jnp.ones((5, 3), jnp.bfloat16)}, state, params)
    assert updates["w"].dtype == jnp.bfloat16 and state.z["w"].dtype == jnp.float32
    x = gradtx.schedule_free_eval_params(state, gradtx.apply_updates(params, updates))
    assert x["w"].dtype == jnp.bfloat16


def test_evaluation_point_converges_on_a_quadratic():
    a, c = jnp.array([1.0, 2.0, 5.0, 10.0]), jnp.array([1.0, -1.0, 2.0, 0.5])
    loss = lambda p: 0.5 * jnp.sum(a * (p["x"] - c) ** 2)
    tx = gradtx.schedule_free_sgd(0.1, warmup_steps=10)

    def body(carry, _):
        params, state = carry
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        return (gradtx.apply_updates(params, updates), state), None

    params = {"x": jnp.array([3.0, 2.0, -1.0, 1.0])}
    (params, state), _ = jax.jit(lambda c: jax.lax.scan(body, c, None, length=1000))(
        (params, tx.init(params))
    )
    assert float(loss(gradtx.schedule_free_eval_params(state, params))) < 1e-5


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: gradtx.schedule_free(gradtx.sgd(0.1), 0.1, b1=0.0),
            ValueError,
            "schedule_free: `b1` must be in (0, 1), got 0.0.",
        ),
        (
            lambda: gradtx.schedule_free_sgd(0.1, b1=1.0),
            ValueError,
            "schedule_free: `b1` must be in (0, 1), got 1.0.",
        ),
        (
            lambda: gradtx.schedule_free_sgd(0.1, warmup_steps=0),
            ValueError,
            "schedule_free_sgd: `warmup_steps` must be an integer > 0, got 0.",
        ),
        (
            lambda: gradtx.schedule_free(0.1, 0.1),
            TypeError,
            "schedule_free: `base_optimizer` must be a GradientTransformation (an `(init, update)` "
            "pair such as `gradtx.adam(1e-3)`), got float.",
        ),
    ],
)
def test_bad_arguments(make, error, message):
    with pytest.raises(error) as e:
        make()
    assert str(e.value) == message


def test_update_needs_params():
    tx = gradtx.schedule_free_sgd(0.1)
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match=r"^schedule_free: this transformation needs the current"):
        tx.update(params, tx.init(params))
