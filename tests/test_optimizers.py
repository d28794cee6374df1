"""Trajectories of the optimizers against the float64 transcriptions in `reference.py`."""

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference
from tests.helpers import assert_trajectories_close, random_grads, trajectory

THETA0 = np.random.default_rng(0).standard_normal((5, 3))


def schedule_pair():
    """A warmup-cosine schedule in gradtx and the same one from its formula."""
    sched = gradtx.warmup_cosine_decay_schedule(0.0, 0.1, 3, 12, 0.01)
    return sched, lambda t: reference.warmup_cosine(t, 0.0, 0.1, 3, 12, 0.01)


@pytest.mark.parametrize(("momentum", "nesterov"), [(None, False), (0.9, False), (0.9, True)])
def test_sgd_matches_seed_rule_with_schedule(momentum, nesterov):
    sched, ref_sched = schedule_pair()
    grads = random_grads(1)
    got = trajectory(gradtx.sgd(sched, momentum, nesterov), THETA0, grads)
    want = reference.sgd(THETA0, grads, ref_sched, momentum or 0.0, nesterov)
    assert_trajectories_close(got, want)


def test_sgd_differs_from_pytorch_form_only_when_lr_changes():
    grads = random_grads(2)
    sched, ref_sched = schedule_pair()
    seed_form = reference.sgd(THETA0, grads, ref_sched, 0.9)
    torch_form = reference.sgd_pytorch_form(THETA0, grads, ref_sched, 0.9)
    assert np.max(np.abs(seed_form[-1] - torch_form[-1])) > 1e-2  # the two forms really differ
    # The documented recipe for PyTorch's behaviour: trace first, learning rate last.
    tx = gradtx.chain(gradtx.trace(0.9), gradtx.scale_by_learning_rate(sched))
    assert_trajectories_close(trajectory(tx, THETA0, grads), torch_form)
    # With a constant learning rate, both forms coincide.
    assert_trajectories_close(
        trajectory(gradtx.sgd(0.05, 0.9), THETA0, grads),
        reference.sgd_pytorch_form(THETA0, grads, 0.05, 0.9),
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"b1": 0.8, "b2": 0.95, "eps": 1e-6},
        {"eps_root": 1e-4},
        {"nesterov": True},
    ],
)
def test_adam_matches_reference(kwargs):
    grads = random_grads(3)
    got = trajectory(gradtx.adam(1e-2, **kwargs), THETA0, grads)
    assert_trajectories_close(got, reference.adam(THETA0, grads, 1e-2, **kwargs))


def test_adam_first_step_is_bias_corrected():
    # At t=1 the bias-corrected direction is g / (|g| + eps): every element moves by ~lr.
    g = np.array([[3.0, -0.5, 1e-3]])
    (theta1,) = trajectory(gradtx.adam(0.1), np.zeros((1, 3)), [g])
    np.testing.assert_allclose(theta1, -0.1 * g / (np.abs(g) + 1e-8), rtol=1e-6)


def test_adam_eps_outside_and_eps_root_inside_the_sqrt():
    g = np.full((1, 1), 1e-3)
    (outside,) = trajectory(gradtx.adam(1.0, eps=1e-3), np.zeros((1, 1)), [g])
    (inside,) = trajectory(gradtx.adam(1.0, eps=0.0, eps_root=1e-3), np.zeros((1, 1)), [g])
    np.testing.assert_allclose(outside, -1e-3 / (1e-3 + 1e-3), rtol=1e-6)
    np.testing.assert_allclose(inside, -1e-3 / np.sqrt(1e-6 + 1e-3), rtol=1e-6)


@pytest.mark.parametrize("schedule", [False, True])
def test_adamw_matches_reference(schedule):
    grads = random_grads(4)
    lr, ref_lr = schedule_pair() if schedule else (1e-2, 1e-2)
    got = trajectory(gradtx.adamw(lr, weight_decay=0.1), THETA0, grads)
    assert_trajectories_close(got, reference.adam(THETA0, grads, ref_lr, weight_decay=0.1))


def test_adamw_decay_is_decoupled_not_l2():
    grads = random_grads(5)
    decoupled = reference.adam(THETA0, grads, 1e-2, weight_decay=0.5)
    l2 = gradtx.chain(
        gradtx.add_decayed_weights(0.5), gradtx.scale_by_adam(), gradtx.scale_by_learning_rate(1e-2)
    )
    l2_traj = trajectory(l2, THETA0, grads)
    assert np.max(np.abs(l2_traj[-1] - decoupled[-1])) > 1e-2
    assert_trajectories_close(
        trajectory(gradtx.adamw(1e-2, weight_decay=0.5), THETA0, grads), decoupled
    )


def test_adamw_mask_skips_leaves():
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    tx = gradtx.adamw(0.1, weight_decay=0.5, mask=lambda p: {"w": True, "b": False})
    zeros = {"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)}
    updates, _ = tx.update(zeros, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.5 * np.ones((2, 2)), rtol=1e-6)
    np.testing.assert_array_equal(updates["b"], np.zeros(2))


@pytest.mark.parametrize(
    "kwargs", [{}, {"b1": 0.95, "b2": 0.98, "weight_decay": 0.1}, {"b1": 0.5, "b2": 0.0}]
)
def test_lion_matches_reference(kwargs):
    grads = random_grads(6)
    sched, ref_sched = schedule_pair()
    got = trajectory(gradtx.lion(sched, **kwargs), THETA0, grads)
    kwargs.setdefault("weight_decay", 1e-3)
    assert_trajectories_close(got, reference.lion(THETA0, grads, ref_sched, **kwargs))


def test_lion_state_is_half_of_adamw():
    params = {"w": jnp.zeros((64, 32)), "b": jnp.zeros(32)}

    def state_bytes(tx):
        from jax import tree

        return sum(x.size * x.dtype.itemsize for x in tree.leaves(tx.init(params)))

    param_bytes = (64 * 32 + 32) * 4
    assert state_bytes(gradtx.lion(1e-4)) == param_bytes
    assert state_bytes(gradtx.adamw(1e-3)) == 2 * param_bytes + 4  # two moments and a count


@pytest.mark.parametrize("name", ["adam", "lion", "trace"])
def test_mu_dtype_sets_moment_dtype(name):
    params = {"w": jnp.zeros((3,), jnp.float32)}
    tx = {
        "adam": lambda: gradtx.scale_by_adam(mu_dtype=jnp.bfloat16),
        "lion": lambda: gradtx.scale_by_lion(mu_dtype=jnp.bfloat16),
        "trace": lambda: gradtx.trace(0.9, accumulator_dtype=jnp.bfloat16),
    }[name]()
    state = tx.init(params)
    first = state[1] if name == "adam" else state[0]
    assert first["w"].dtype == jnp.bfloat16
    updates, new_state = tx.update({"w": jnp.ones(3)}, state, params)
    assert updates["w"].dtype == jnp.float32
    new_first = new_state[1] if name == "adam" else new_state[0]
    assert new_first["w"].dtype == jnp.bfloat16


@pytest.mark.parametrize("decay", [0.9, 0.999, 0.9999])
def test_bias_correction_is_accurate_in_float32(decay):
    from gradtx import _tree

    steps = jnp.array([1, 2, 10, 1000, 100_000], jnp.int32)
    got = np.asarray(_tree.bias_correction(decay, steps, jnp.float32), np.float64)
    want = -np.expm1(np.asarray(steps, np.float64) * np.log(decay))  # float64 truth
    np.testing.assert_allclose(got, want, rtol=3e-7)
