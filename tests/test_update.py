"""apply_updates: values, dtypes and error messages."""

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx


def test_adds_leafwise(maybe_jit):
    params = {"w": jnp.array([1.0, 2.0]), "n": [jnp.array(3.0)]}
    updates = {"w": jnp.array([0.5, -1.0]), "n": [jnp.array(-3.0)]}
    out = maybe_jit(gradtx.apply_updates)(params, updates)
    np.testing.assert_array_equal(out["w"], [1.5, 1.0])
    np.testing.assert_array_equal(out["n"][0], 0.0)


def test_keeps_param_dtype_with_wider_updates():
    params = {"w": jnp.array([1.0, 256.0], jnp.bfloat16)}
    updates = {"w": jnp.array([2.0**-9, 1.0], jnp.float32)}
    out = gradtx.apply_updates(params, updates)
    assert out["w"].dtype == jnp.bfloat16
    # Formed in float32, rounded once: 1 + 2^-9 rounds to 1 in bf16; 256 + 1 rounds to 256.
    np.testing.assert_array_equal(np.asarray(out["w"], np.float32), [1.0, 256.0])


def test_keeps_param_dtype_with_narrower_updates():
    params = {"w": jnp.array([1.0], jnp.float32)}
    out = gradtx.apply_updates(params, {"w": jnp.array([0.5], jnp.bfloat16)})
    assert out["w"].dtype == jnp.float32
    np.testing.assert_array_equal(out["w"], [1.5])


def test_none_leaves_pass_through():
    out = gradtx.apply_updates({"a": None, "b": jnp.ones(2)}, {"a": None, "b": jnp.ones(2)})
    assert out["a"] is None
    np.testing.assert_array_equal(out["b"], [2.0, 2.0])


def test_shape_mismatch_names_the_leaf():
    params = {"dense": {"w": jnp.zeros((2, 3))}}
    updates = {"dense": {"w": jnp.zeros((3, 2))}}
    with pytest.raises(ValueError) as info:
        gradtx.apply_updates(params, updates)
    assert str(info.value) == (
        "apply_updates: updates['dense']['w'] has shape (3, 2), but params['dense']['w'] has "
        "shape (2, 3). The updates must come from gradients of these parameters."
    )


def test_structure_mismatch_names_the_missing_leaf():
    params = {"dense": {"w": jnp.zeros(2), "b": jnp.zeros(2)}}
    updates = {"dense": {"w": jnp.zeros(2)}}
    with pytest.raises(ValueError) as info:
        gradtx.apply_updates(params, updates)
    assert str(info.value) == (
        "apply_updates: `updates` and `params` have different tree structures: "
        "params['dense']['b'] has no counterpart in `updates`. The updates must come from "
        "gradients of these parameters."
    )


def test_complex_params_keep_their_imaginary_part():
    # Regression: complex64 + float32 used to be formed in float32, dropping the imaginary part.
    out = gradtx.apply_updates(jnp.array([1 + 1j], jnp.complex64), jnp.array([0.5], jnp.float32))
    assert out.dtype == jnp.complex64
    np.testing.assert_array_equal(out, [1.5 + 1j])
