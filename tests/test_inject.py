"""`inject_hyperparams`: hyperparameters kept in the state, scheduled, read and set between steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference
from tests.helpers import assert_trajectories_close, random_grads

THETA0 = np.random.default_rng(0).standard_normal((5, 3))


def run(tx, grads, lr_changes=None, dtype=jnp.float32):
    """Parameters after each jitted step, setting `learning_rate` before the steps in `lr_changes`.

    Returns the trajectory, the logged learning rates and the number of traces of the step.
    """
    traces = []

    @jax.jit
    def step(params, state, g):
        traces.append(1)
        updates, state = tx.update({"w": g}, state, params)
        return gradtx.apply_updates(params, updates), state

    params = {"w": jnp.asarray(THETA0, dtype)}
    state = tx.init(params)
    out, logged = [], []
    for t, g in enumerate(grads):
        if lr_changes and t in lr_changes:
            lr = jnp.float32(lr_changes[t])
            state = state._replace(hyperparams=dict(state.hyperparams, learning_rate=lr))
        params, state = step(params, state, jnp.asarray(g, dtype))
        out.append(np.asarray(params["w"], np.float64))
        logged.append(float(state.hyperparams["learning_rate"]))
    return out, logged, len(traces)


def test_schedule_matches_reference_and_is_logged():
    sched = gradtx.warmup_cosine_decay_schedule(0.0, 0.1, 3, 12, 0.01)
    ref_sched = lambda t: reference.warmup_cosine(t, 0.0, 0.1, 3, 12, 0.01)
    grads = random_grads(10)
    tx = gradtx.inject_hyperparams(gradtx.adamw)(learning_rate=sched, weight_decay=0.1)
    got, logged, _ = run(tx, grads)
    assert_trajectories_close(got, reference.adam(THETA0, grads, ref_sched, weight_decay=0.1))
    # After step t (t = 0, 1, ...) the state holds the learning rate that step used.
    np.testing.assert_allclose(logged, [ref_sched(t) for t in range(12)], rtol=1e-6, atol=1e-9)


def test_setting_the_learning_rate_between_steps_follows_the_reference_without_retracing():
    grads = random_grads(11)
    changes = {4: 3e-3, 8: 1e-3}
    lrs = [1e-2] * 4 + [3e-3] * 4 + [1e-3] * 4
    tx = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=1e-2)
    got, logged, traces = run(tx, grads, changes)
    assert_trajectories_close(got, reference.adam(THETA0, grads, lambda t: lrs[t]))
    np.testing.assert_allclose(logged, lrs, rtol=1e-7)
    assert traces == 1
    # The changes matter: with a constant rate the end point is elsewhere.
    constant = reference.adam(THETA0, grads, 1e-2)
    assert np.max(np.abs(constant[-1] - got[-1])) > 1e-2


def test_other_hyperparameters_can_be_set_too():
    grads = random_grads(12)
    tx = gradtx.inject_hyperparams(gradtx.sgd)(learning_rate=0.1, momentum=0.9)
    params = {"w": jnp.asarray(THETA0, jnp.float32)}
    state = tx.init(params)
    step = jax.jit(tx.update)
    theta, v, out = THETA0.copy(), 0.0, []
    for t, g in enumerate(grads):
        momentum = 0.9 if t < 6 else 0.5
        if t == 6:
            state = state._replace(hyperparams=dict(state.hyperparams, momentum=jnp.float32(0.5)))
        updates, state = step({"w": jnp.asarray(g, jnp.float32)}, state, params)
        params = gradtx.apply_updates(params, updates)
        v = momentum * v + 0.1 * g  # the rule of `gradtx.sgd`, written out
        theta = theta - v
        out.append(theta)
    np.testing.assert_allclose(np.asarray(params["w"]), out[-1], rtol=1e-5, atol=1e-6)


def test_bf16_params_stay_bf16_with_float32_hyperparameters():
    grads = random_grads(13, steps=10)
    tx = gradtx.inject_hyperparams(gradtx.adam)(learning_rate=1e-2)
    params = {"w": jnp.asarray(THETA0, jnp.bfloat16)}
    state = tx.init(params)
    assert {v.dtype for v in state.hyperparams.values()} == {jnp.dtype(jnp.float32)}
    step = jax.jit(tx.update)
    for g in grads:
        updates, state = step({"w": jnp.asarray(g, jnp.bfloat16)}, state, params)
        assert updates["w"].dtype == jnp.bfloat16
        params = gradtx.apply_updates(params, updates)
    assert params["w"].dtype == jnp.bfloat16
    assert state.hyperparams["learning_rate"].dtype == jnp.float32
    want = reference.adam(THETA0, grads, 1e-2)[-1]
    np.testing.assert_allclose(np.asarray(params["w"], np.float64), want, rtol=0.02, atol=0.02)


def test_which_arguments_are_injected():
    tx = gradtx.inject_hyperparams(gradtx.adamw)(
        learning_rate=gradtx.constant_schedule(1e-3), nesterov=True, mu_dtype=jnp.bfloat16
    )
    state = tx.init({"w": jnp.zeros(3)})
    assert sorted(state.hyperparams) == [
        "b1",
        "b2",
        "eps",
        "eps_root",
        "learning_rate",
        "weight_decay",
    ]
    assert {v.shape for v in state.hyperparams.values()} == {()}
    assert state.inner_state[0].mu["w"].dtype == jnp.bfloat16  # mu_dtype was passed as given


def test_integers_are_int32_and_hyperparam_dtype_sets_floats():
    tx = gradtx.inject_hyperparams(gradtx.scale, hyperparam_dtype=jnp.bfloat16)(step_size=0.5)
    assert tx.init({"w": jnp.zeros(2)}).hyperparams["step_size"].dtype == jnp.bfloat16
    tx = gradtx.inject_hyperparams(gradtx.scale)(step_size=2)
    state = tx.init({"w": jnp.zeros(2)})
    assert state.hyperparams["step_size"].dtype == jnp.int32
    updates, _ = tx.update({"w": jnp.ones(2)}, state)
    np.testing.assert_array_equal(updates["w"], [2.0, 2.0])
    assert updates["w"].dtype == jnp.float32


def test_a_callable_that_is_not_a_schedule_must_be_static():
    mask = lambda p: {"w": True, "b": False}
    with pytest.raises(TypeError) as info:
        gradtx.inject_hyperparams(gradtx.adamw)(learning_rate=0.1, weight_decay=0.5, mask=mask)
    assert str(info.value) == (
        "inject_hyperparams: `mask` is callable, so it is treated as a schedule, but mask(0) "
        "returned {'w': True, 'b': False}, not a real scalar. If `mask` is not a schedule, list "
        "it in `static_args`, e.g. inject_hyperparams(adamw, static_args=('mask',))."
    )
    tx = gradtx.inject_hyperparams(gradtx.adamw, static_args="mask")(
        learning_rate=0.1, weight_decay=0.5, mask=mask
    )
    params = {"w": jnp.ones(2), "b": jnp.ones(2)}
    zeros = {"w": jnp.zeros(2), "b": jnp.zeros(2)}
    updates, state = tx.update(zeros, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.05, -0.05], rtol=1e-6)
    np.testing.assert_array_equal(updates["b"], [0.0, 0.0])
    assert "mask" not in state.hyperparams


def test_unknown_static_args_are_rejected():
    with pytest.raises(ValueError) as info:
        gradtx.inject_hyperparams(gradtx.sgd, static_args=("lr",))
    assert str(info.value) == (
        "inject_hyperparams: `static_args` names ['lr'], which sgd does not take. Its arguments "
        "are ['learning_rate', 'momentum', 'nesterov', 'accumulator_dtype']."
    )


def test_arguments_the_factory_refuses_as_arrays_must_be_static():
    def every(k: int = 2, scale: float = 1.0):
        if not isinstance(k, int):
            raise ValueError(f"every: `k` must be an integer, got {k!r}.")
        return gradtx.scale(scale)

    with pytest.raises(TypeError) as info:
        gradtx.inject_hyperparams(every)(scale=0.5)
    assert str(info.value) == (
        "inject_hyperparams: every refuses `k` as a scalar array, so it cannot be injected: "
        "every: `k` must be an integer, got Array(2, dtype=int32). List it in `static_args`: "
        "inject_hyperparams(every, static_args=('k',))."
    )
    tx = gradtx.inject_hyperparams(every, static_args="k")(scale=0.5)
    assert sorted(tx.init({"w": jnp.zeros(2)}).hyperparams) == ["scale"]


def test_plain_values_are_checked_when_built():
    with pytest.raises(ValueError) as info:
        gradtx.inject_hyperparams(gradtx.adam)(learning_rate=1e-3, b1=2.0)
    assert str(info.value) == "scale_by_adam: `b1` must be in [0, 1), got 2.0."


def test_a_scheduled_entry_is_recomputed_every_step():
    tx = gradtx.inject_hyperparams(gradtx.sgd)(learning_rate=gradtx.constant_schedule(0.1))
    params = {"w": jnp.zeros(2)}
    state = tx.init(params)
    state = state._replace(hyperparams={"learning_rate": jnp.float32(5.0)})
    updates, state = tx.update({"w": jnp.ones(2)}, state, params)
    np.testing.assert_allclose(updates["w"], [-0.1, -0.1], rtol=1e-7)
    np.testing.assert_allclose(state.hyperparams["learning_rate"], 0.1, rtol=1e-7)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (
            jnp.ones(2),
            ValueError,
            "inject_hyperparams: state.hyperparams['step_size'] must be a scalar, got shape (2,).",
        ),
        (
            jnp.float32(0.5),
            TypeError,
            "inject_hyperparams: state.hyperparams['step_size'] was injected as an integer and cannot hold a float32 value. Give it as a float when building the transformation (e.g. `step_size=1.0`, not `step_size=1`).",
        ),
    ],
)
def test_bad_values_set_from_outside(value, error, message):
    tx = gradtx.inject_hyperparams(gradtx.scale)(step_size=2)
    state = tx.init({"w": jnp.zeros(2)})
    state = state._replace(hyperparams={"step_size": value})
    with pytest.raises(error) as info:
        tx.update({"w": jnp.ones(2)}, state)
    assert str(info.value) == message


def test_added_entries_are_rejected():
    tx = gradtx.inject_hyperparams(gradtx.scale)(step_size=2.0)
    state = tx.init({"w": jnp.zeros(2)})
    state = state._replace(hyperparams=dict(state.hyperparams, lr=jnp.float32(1.0)))
    with pytest.raises(ValueError) as info:
        tx.update({"w": jnp.ones(2)}, state)
    assert str(info.value) == (
        "inject_hyperparams: `state.hyperparams` has keys ['lr', 'step_size'], expected "
        "['step_size']. Replace values of existing entries only."
    )


FACTORIES = {
    "sgd": (gradtx.sgd, {"learning_rate": 0.1, "momentum": 0.9}),
    "adam": (gradtx.adam, {"learning_rate": 0.1, "eps_root": 1e-6}),
    "adamw": (gradtx.adamw, {"learning_rate": 0.1, "weight_decay": 0.1}),
    "lion": (gradtx.lion, {"learning_rate": 0.1}),
    "trace": (gradtx.trace, {"decay": 0.5}),
    "clip": (gradtx.clip, {"max_delta": 0.3}),
    "clip_by_global_norm": (gradtx.clip_by_global_norm, {"max_norm": 0.5}),
    "ema": (gradtx.ema, {"decay": 0.5}),
    "clip_by_block_rms": (gradtx.clip_by_block_rms, {"threshold": 0.2}),
    "adaptive_grad_clip": (gradtx.adaptive_grad_clip, {"clipping": 0.05}),
    "normalize_by_update_norm": (gradtx.normalize_by_update_norm, {"scale_factor": 2.0}),
    "add_noise": (gradtx.add_noise, {"eta": 0.1, "gamma": 0.55, "seed": 3}),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_gradtx_factories_accept_traced_hyperparameters(name):
    factory, kwargs = FACTORIES[name]
    params = {"w": jnp.asarray(THETA0[:2], jnp.float32), "b": jnp.asarray([0.5, -1.0])}
    grads = jax.tree.map(lambda p: jnp.cos(3 * p), params)
    plain, injected = factory(**kwargs), gradtx.inject_hyperparams(factory)(**kwargs)
    state = injected.init(params)
    assert sorted(state.hyperparams) != []
    plain_state, plain_step, step = (
        plain.init(params),
        jax.jit(plain.update),
        jax.jit(injected.update),
    )
    for _ in range(2):  # the second step also uses the state (momentum, averages, key)
        want, plain_state = plain_step(grads, plain_state, params)
        got, state = step(grads, state, params)
        # An injected `b2` is a float32 array, so `1 - b2` is formed after rounding 0.999 to
        # float32 (1.3e-5 relative error); a Python `b2` is subtracted exactly on the host.
        rtol = 2e-5 if name in ("adam", "adamw") else 1e-6
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-7)
    pairs = zip(jax.tree.leaves(got), jax.tree.leaves(grads), strict=True)
    assert any(not np.array_equal(a, g) for a, g in pairs)  # the transformation did something


def test_extra_arguments_reach_the_inner_transformation():
    def scale_by_loss(factor):
        def update_fn(updates, state, params=None, *, value):
            return jax.tree.map(lambda u: u * factor * value, updates), state

        return gradtx.GradientTransformationExtraArgs(lambda p: gradtx.EmptyState(), update_fn)

    tx = gradtx.chain(gradtx.inject_hyperparams(scale_by_loss)(factor=2.0))
    updates, _ = tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.zeros(2)}), value=jnp.float32(3))
    np.testing.assert_allclose(updates["w"], [6.0, 6.0])
