"""chain and named_chain: laws of composition and argument forwarding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

PARAMS = {"w": jnp.array([1.0, -2.0, 3.0])}
GRADS = {"w": jnp.array([0.5, 0.25, -1.0])}


def run(tx, steps=3):
    state = tx.init(PARAMS)
    out = []
    for _ in range(steps):
        u, state = tx.update(GRADS, state, PARAMS)
        out.append(np.asarray(u["w"]))
    return out


def test_empty_chain_is_identity():
    for got in run(gradtx.chain()):
        np.testing.assert_array_equal(got, GRADS["w"])


def test_chain_is_associative():
    a, b, c = gradtx.scale_by_adam(), gradtx.trace(0.5), gradtx.scale(-0.1)
    flat = run(gradtx.chain(a, b, c))
    left = run(gradtx.chain(gradtx.chain(a, b), c))
    right = run(gradtx.chain(a, gradtx.chain(b, c)))
    for x, y, z in zip(flat, left, right, strict=True):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)


def test_chain_applies_in_order():
    # scale(2) then clip(1): [1, 0.5, -1]; clip(1) then scale(2): [1, 0.5, -2].
    (a,) = run(gradtx.chain(gradtx.scale(2.0), gradtx.clip(1.0)), steps=1)
    (b,) = run(gradtx.chain(gradtx.clip(1.0), gradtx.scale(2.0)), steps=1)
    np.testing.assert_array_equal(a, [1.0, 0.5, -1.0])
    np.testing.assert_array_equal(b, [1.0, 0.5, -2.0])


def test_named_chain_equals_chain_and_names_its_state():
    named = gradtx.named_chain(("adam", gradtx.scale_by_adam()), ("lr", gradtx.scale(-0.1)))
    plain = gradtx.chain(gradtx.scale_by_adam(), gradtx.scale(-0.1))
    for x, y in zip(run(named), run(plain), strict=True):
        np.testing.assert_array_equal(x, y)
    state = named.init(PARAMS)
    assert set(state) == {"adam", "lr"}
    assert isinstance(state["adam"], gradtx.ScaleByAdamState)


def test_extra_args_reach_only_transforms_that_accept_them():
    seen = {}

    def init(params):
        return gradtx.EmptyState()

    def update(updates, state, params=None, *, value):
        seen["value"] = value
        return jax.tree.map(lambda g: g * value, updates), state

    wants_value = gradtx.GradientTransformationExtraArgs(init, update)
    tx = gradtx.chain(gradtx.scale(2.0), wants_value)  # plain `scale` must not get `value`
    u, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS, value=jnp.asarray(3.0))
    assert float(seen["value"]) == 3.0
    np.testing.assert_array_equal(u["w"], 6.0 * GRADS["w"])


def test_state_from_another_chain_is_rejected():
    tx = gradtx.chain(gradtx.scale(1.0), gradtx.scale(2.0))
    with pytest.raises(ValueError, match=r"chain: expected the state built by this chain's"):
        tx.update(GRADS, (gradtx.EmptyState(),), PARAMS)


def test_named_chain_rejects_duplicate_names():
    with pytest.raises(ValueError) as info:
        gradtx.named_chain(("a", gradtx.scale(1.0)), ("a", gradtx.scale(2.0)))
    assert str(info.value) == "named_chain: names must be unique, ['a'] appear more than once."


def test_chain_rejects_non_transformations():
    with pytest.raises(TypeError) as info:
        gradtx.chain(gradtx.scale(1.0), lambda g: g)
    assert str(info.value).startswith(
        "chain: `transforms[1]` must be a GradientTransformation (an `(init, update)` pair"
    )
