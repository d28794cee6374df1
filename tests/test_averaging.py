"""Moving averages: `ema` of updates, target-network updates, and `params_ema`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference
from tests.helpers import assert_trajectories_close, random_grads


@pytest.mark.parametrize(("decay", "debias"), [(0.9, True), (0.9, False), (0.5, True), (0.0, True)])
def test_ema_matches_reference(decay, debias, maybe_jit):
    grads = random_grads(20)
    tx = gradtx.ema(decay, debias)
    state = tx.init({"w": jnp.zeros((5, 3))})
    step = maybe_jit(tx.update)
    got = []
    for g in grads:
        u, state = step({"w": jnp.asarray(g, jnp.float32)}, state)
        got.append(np.asarray(u["w"], np.float64))
    assert_trajectories_close(got, reference.ema(grads, decay, debias))
    assert int(state.count) == len(grads)


def test_ema_first_debiased_update_is_the_gradient():
    tx = gradtx.ema(0.99)
    g = {"w": jnp.asarray([1.5, -2.0, 3e-3])}
    u, _ = tx.update(g, tx.init(g))
    np.testing.assert_allclose(u["w"], g["w"], rtol=1e-5)


def test_ema_dtypes():
    params = {"w": jnp.zeros(4, jnp.bfloat16)}
    tx = gradtx.ema(0.9)
    u, state = tx.update({"w": jnp.ones(4, jnp.bfloat16)}, tx.init(params))
    assert u["w"].dtype == jnp.bfloat16
    assert state.ema["w"].dtype == jnp.bfloat16
    tx = gradtx.ema(0.9, accumulator_dtype=jnp.bfloat16)
    state = tx.init({"w": jnp.zeros(4)})
    u, state = tx.update({"w": jnp.full(4, 1 / 3, jnp.float32)}, state)
    assert state.ema["w"].dtype == jnp.bfloat16
    assert u["w"].dtype == jnp.float32
    # Debiased before rounding to bfloat16: u_1 = g_1 to float32 precision.
    np.testing.assert_allclose(u["w"], np.full(4, 1 / 3), rtol=1e-6)


def test_incremental_update_formula_and_dtypes(maybe_jit):
    rng = np.random.default_rng(21)
    new = {"a": rng.standard_normal((3, 2)), "b": [rng.standard_normal(4), np.float64(0.7)]}
    old = jax.tree.map(lambda x: x + 1.0, new)
    f32 = lambda t: jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), t)
    got = maybe_jit(gradtx.incremental_update)(f32(new), f32(old), 0.05)
    want = jax.tree.map(lambda n, o: 0.05 * n + 0.95 * o, new, old)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    for step_size, expected in [(0.0, old), (1.0, new)]:
        exact = gradtx.incremental_update(f32(new), f32(old), step_size)
        for a, b in zip(jax.tree.leaves(exact), jax.tree.leaves(f32(expected)), strict=True):
            np.testing.assert_array_equal(a, b)
    # The result keeps the dtype of the tensors being updated.
    mixed = gradtx.incremental_update(
        {"w": jnp.ones(2, jnp.float32)}, {"w": jnp.zeros(2, jnp.bfloat16)}, 0.5
    )
    assert mixed["w"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(mixed["w"].astype(jnp.float32), [0.5, 0.5])


def test_incremental_update_with_traced_step_size():
    step = jax.jit(gradtx.incremental_update)
    got = step({"w": jnp.ones(2)}, {"w": jnp.zeros(2)}, jnp.float32(0.25))
    np.testing.assert_allclose(got["w"], [0.25, 0.25])


def test_periodic_update_copies_every_period(maybe_jit):
    new = {"w": jnp.ones(3, jnp.float32)}
    old = {"w": jnp.zeros(3, jnp.bfloat16)}
    update = maybe_jit(lambda n, o, s: gradtx.periodic_update(n, o, s, 3))
    copied = []
    for step in range(10):
        out = update(new, old, jnp.int32(step))
        assert out["w"].dtype == jnp.bfloat16
        copied.append(bool(out["w"][0] == 1))
    assert copied == [s % 3 == 0 for s in range(10)]
    assert gradtx.periodic_update(new, old, 4, 2)["w"][0] == 1


@pytest.mark.parametrize("decay", [0.9, 0.5])
def test_params_ema_matches_reference_over_training(decay):
    grads = random_grads(22)
    theta0 = np.random.default_rng(23).standard_normal((5, 3))
    opt, averager = gradtx.sgd(0.1, momentum=0.9), gradtx.params_ema(decay)
    params = {"w": jnp.asarray(theta0, jnp.float32)}
    opt_state, avg = opt.init(params), averager.init(params)

    @jax.jit
    def step(params, opt_state, avg, g):
        updates, opt_state = opt.update({"w": g}, opt_state, params)
        params = gradtx.apply_updates(params, updates)
        return params, opt_state, averager.update(params, avg)

    thetas, averages = [], []
    for g in grads:
        params, opt_state, avg = step(params, opt_state, avg, jnp.asarray(g, jnp.float32))
        thetas.append(np.asarray(params["w"], np.float64))
        averages.append(np.asarray(avg.ema["w"], np.float64))
    assert_trajectories_close(averages, reference.params_ema(theta0, thetas, decay))
    assert int(avg.count) == len(grads)


def test_params_ema_with_a_schedule_gives_the_uniform_average():
    averager = gradtx.params_ema(lambda t: t / (t + 1))
    thetas = random_grads(24, shape=(4,), steps=10)
    avg = averager.init({"w": jnp.full(4, 100.0)})
    update = jax.jit(averager.update)
    for theta in thetas:
        avg = update({"w": jnp.asarray(theta, jnp.float32)}, avg)
    np.testing.assert_allclose(avg.ema["w"], np.mean(thetas, axis=0), rtol=1e-5, atol=1e-6)
    want = reference.params_ema(np.full(4, 100.0), thetas, lambda t: t / (t + 1))[-1]
    np.testing.assert_allclose(avg.ema["w"], want, rtol=1e-5, atol=1e-6)


def test_params_ema_float32_average_of_bf16_params_moves():
    params = {"w": jnp.ones(3, jnp.bfloat16)}
    frozen, moving = (
        gradtx.params_ema(0.999),
        gradtx.params_ema(0.999, accumulator_dtype=jnp.float32),
    )
    a, b = frozen.init(params), moving.init(params)
    target = {"w": jnp.full(3, 1.5, jnp.bfloat16)}
    for _ in range(10):
        a, b = frozen.update(target, a), moving.update(target, b)
    assert a.ema["w"].dtype == jnp.bfloat16
    assert b.ema["w"].dtype == jnp.float32
    # In bfloat16, 1 + 0.001 * 0.5 rounds back to 1: the average never moves.
    np.testing.assert_array_equal(a.ema["w"].astype(jnp.float32), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(b.ema["w"], 1.5 - 0.5 * 0.999**10, rtol=1e-6)


def test_params_ema_state_does_not_alias_donated_params():
    averager = gradtx.params_ema(0.5)
    params = {"w": jnp.ones(3)}
    avg = averager.init(params)
    donate = jax.jit(lambda p: jax.tree.map(lambda x: x * 2, p), donate_argnums=0)
    params = donate(params)
    avg = averager.update(params, avg)
    np.testing.assert_allclose(avg.ema["w"], [1.5, 1.5, 1.5])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: gradtx.ema(1.0), ValueError, "ema: `decay` must be in [0, 1), got 1.0."),
        (
            lambda: gradtx.ema(0.9, accumulator_dtype=jnp.int32),
            TypeError,
            "ema: `accumulator_dtype` must be a floating dtype, got int32.",
        ),
        (
            lambda: gradtx.incremental_update({"w": jnp.ones(2)}, {"w": jnp.ones(2)}, 1.5),
            ValueError,
            "incremental_update: `step_size` must be in [0, 1], got 1.5.",
        ),
        (
            lambda: gradtx.incremental_update({"w": jnp.ones(3)}, {"w": jnp.ones(2)}, 0.5),
            ValueError,
            "incremental_update: new_tensors['w'] has shape (3,), but old_tensors['w'] has shape (2,).",
        ),
        (
            lambda: gradtx.periodic_update({"w": jnp.ones(2)}, {"w": jnp.ones(2)}, 3, 0),
            ValueError,
            "periodic_update: `update_period` must be an integer > 0, got 0.",
        ),
        (
            lambda: gradtx.periodic_update({"w": jnp.ones(2)}, {"w": jnp.ones(2)}, 3.0, 2),
            TypeError,
            "periodic_update: `steps` must be an integer scalar (the step count), got an array of dtype float32 and shape ().",
        ),
        (
            lambda: gradtx.params_ema(1.5),
            ValueError,
            "params_ema: `decay` must be in [0, 1], got 1.5.",
        ),
        (
            lambda: gradtx.params_ema(0.9).update(
                {"w": jnp.ones(3)}, gradtx.params_ema(0.9).init({"w": jnp.ones(2)})
            ),
            ValueError,
            "params_ema: params['w'] has shape (3,), but state.ema['w'] has shape (2,). The average was built for other parameters: call `init` with these parameters.",
        ),
    ],
)
def test_errors(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message
