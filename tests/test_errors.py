"""Bad input gets a clear error naming the function, the argument or leaf path, and the fix."""

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx


@pytest.mark.parametrize(
    ("factory", "error", "message"),
    [
        (
            lambda: gradtx.adam(1e-3, b1=2.0),
            ValueError,
            "scale_by_adam: `b1` must be in [0, 1), got 2.0.",
        ),
        (
            lambda: gradtx.adam(1e-3, b2=-0.1),
            ValueError,
            "scale_by_adam: `b2` must be in [0, 1), got -0.1.",
        ),
        (
            lambda: gradtx.adam(1e-3, eps=-1.0),
            ValueError,
            "scale_by_adam: `eps` must be >= 0, got -1.0.",
        ),
        (
            lambda: gradtx.adam(float("nan")),
            ValueError,
            "scale_by_learning_rate: `learning_rate` must be finite, got nan.",
        ),
        (
            lambda: gradtx.adamw(1e-3, weight_decay=-1.0),
            ValueError,
            "add_decayed_weights: `weight_decay` must be >= 0, got -1.0.",
        ),
        (
            lambda: gradtx.lion(1e-4, b2=1.0),
            ValueError,
            "scale_by_lion: `b2` must be in [0, 1), got 1.0.",
        ),
        (
            lambda: gradtx.sgd(0.1, momentum=1.5),
            ValueError,
            "trace: `decay` must be in [0, 1), got 1.5.",
        ),
        (
            lambda: gradtx.sgd(0.1, nesterov=True),
            ValueError,
            "sgd: `nesterov=True` needs a `momentum`, e.g. momentum=0.9.",
        ),
        (
            lambda: gradtx.clip_by_global_norm(0.0),
            ValueError,
            "clip_by_global_norm: `max_norm` must be > 0, got 0.0.",
        ),
        (
            lambda: gradtx.sgd("0.1"),
            TypeError,
            "scale_by_learning_rate: `learning_rate` must be a number, an array scalar or a schedule, got '0.1'.",
        ),
        (
            lambda: gradtx.sgd(jnp.ones(2)),
            TypeError,
            "scale_by_learning_rate: `learning_rate` must be a scalar, got an array of shape (2,).",
        ),
        (
            lambda: gradtx.adam(1e-3, mu_dtype=jnp.int32),
            TypeError,
            "scale_by_adam: `mu_dtype` must be a floating dtype, got int32.",
        ),
    ],
)
def test_bad_hyperparameters(factory, error, message):
    with pytest.raises(error) as info:
        factory()
    assert str(info.value) == message


def test_state_for_other_params_names_the_leaf():
    tx = gradtx.adam(1e-3)
    state = tx.init({"dense": {"w": jnp.zeros((2, 3))}})
    with pytest.raises(ValueError) as info:
        tx.update({"dense": {"w": jnp.zeros((3, 2))}}, state)
    assert str(info.value) == (
        "scale_by_adam: updates['dense']['w'] has shape (3, 2), but state.mu['dense']['w'] has "
        "shape (2, 3). The optimizer state was built for other parameters: call `init` with the "
        "parameters you are updating."
    )


def test_missing_params_says_to_pass_them():
    tx = gradtx.adamw(1e-3)
    params = {"w": jnp.zeros(2)}
    with pytest.raises(ValueError) as info:
        tx.update(params, tx.init(params))
    assert str(info.value) == (
        "add_decayed_weights: this transformation needs the current parameters. Call "
        "`update(updates, state, params)`, passing `params` as the third argument."
    )


def test_integer_params_are_rejected_at_init():
    with pytest.raises(TypeError) as info:
        gradtx.adam(1e-3).init({"w": jnp.zeros(2), "step": jnp.zeros((), jnp.int32)})
    assert str(info.value).startswith("scale_by_adam: params['step'] has dtype int32; optimizers")


def test_mask_with_wrong_structure_names_the_leaf():
    params = {"w": jnp.zeros(2), "b": jnp.zeros(2)}
    tx = gradtx.adamw(1e-3, mask={"w": True})
    with pytest.raises(ValueError, match=r"params\['b'\] has no counterpart in `mask`"):
        tx.update(params, tx.init(params), params)


def test_traced_hyperparameters_are_accepted():
    # Arrays (also under jit) are let through the eager checks.
    import jax

    @jax.jit
    def step(lr, g):
        tx = gradtx.sgd(lr)
        return tx.update(g, tx.init(g))[0]

    np.testing.assert_allclose(step(jnp.float32(0.5), {"w": jnp.ones(2)})["w"], -0.5)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("scale_by_adam", lambda: gradtx.adam(1e-3)),
        ("trace", lambda: gradtx.sgd(0.1, momentum=0.9)),
        ("scale_by_lion", lambda: gradtx.lion(1e-4)),
    ],
)
def test_complex_params_are_rejected_with_a_clear_error(name, make):
    with pytest.raises(TypeError) as info:
        make().init({"z": jnp.zeros(2, jnp.complex64)})
    assert str(info.value) == (
        f"{name}: params['z'] has dtype complex64; complex parameters are not supported. "
        "Optimize the real and imaginary parts as two real leaves."
    )


def test_numpy_bool_is_not_a_learning_rate():
    with pytest.raises(TypeError, match=r"`learning_rate` must be a number"):
        gradtx.sgd(np.True_)


def test_a_dtype_is_not_a_learning_rate():
    # Regression: `adam(jnp.float32)` was taken for a schedule, so lr = step count.
    with pytest.raises(TypeError) as info:
        gradtx.adam(jnp.float32)
    assert str(info.value) == (
        "scale_by_learning_rate: `learning_rate` is the type float32, not a value; give a "
        "number such as `float32(1e-3)`."
    )


def test_schedule_must_return_a_scalar():
    tx = gradtx.adam(lambda count: jnp.array([1.0, 2.0]))
    params = {"w": jnp.zeros((2, 3))}
    with pytest.raises(TypeError) as info:
        tx.update(params, tx.init(params))
    assert str(info.value) == (
        "scale_by_schedule: the schedule must return a real scalar for the step count, got "
        "float32 of shape (2,)."
    )


def test_apply_updates_names_an_integer_leaf():
    with pytest.raises(TypeError) as info:
        gradtx.apply_updates({"w": jnp.ones(3, jnp.int32)}, {"w": jnp.ones(3, jnp.int32)})
    assert str(info.value).startswith("apply_updates: params['w'] has dtype int32;")
