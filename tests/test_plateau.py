"""`reduce_on_plateau`, `apply_every` and `conditionally_transform`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import reference
from tests.helpers import random_grads


def plateau_values(seed=0):
    """A loss that falls, stalls (with noise), falls again and stalls again."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [
            np.linspace(5.0, 1.0, 8),
            1.0 + 0.01 * rng.uniform(size=30),
            np.linspace(0.9, 0.1, 6),
            0.1 + 1e-3 * rng.uniform(size=30),
        ]
    ).tolist()


def run_plateau(tx, values, grads):
    """The updates after each step (float64) and the final state, under jit."""
    params = {"w": jnp.zeros(grads[0].shape)}

    @jax.jit
    def step(state, g, value):
        return tx.update({"w": g}, state, params, value=value)

    state, out = tx.init(params), []
    for g, v in zip(grads, values, strict=True):
        updates, state = step(state, jnp.asarray(g, jnp.float32), jnp.float32(v))
        out.append(np.asarray(updates["w"], np.float64))
    return out, state


@pytest.mark.parametrize(
    "kwargs",
    [
        {"patience": 5},
        {"factor": 0.5, "patience": 3, "cooldown": 4, "min_scale": 0.1},
        {"factor": 0.5, "patience": 2, "accumulation_size": 3, "rtol": 0.0, "atol": 1e-3},
        {"factor": 0.2, "patience": 4, "rtol": 0.1},
    ],
)
def test_reduce_on_plateau_matches_reference(kwargs):
    values = plateau_values()
    grads = random_grads(1, shape=(3,), steps=len(values))
    got, state = run_plateau(gradtx.reduce_on_plateau(**kwargs), values, grads)
    scales = reference.reduce_on_plateau_scales(values, **kwargs)
    assert len(set(scales)) >= 3  # the scale really dropped, at least twice
    for t, (u, s, g) in enumerate(zip(got, scales, grads, strict=True)):
        np.testing.assert_allclose(u, s * g, rtol=1e-6, err_msg=f"step {t}")
    np.testing.assert_allclose(float(state.scale), scales[-1], rtol=1e-6)


def test_reduce_on_plateau_by_hand():
    # patience 2: the first value improves on inf; two more equal values make a plateau and the
    # scale drops on the step that completes it; cooldown 1 then ignores one evaluation.
    tx = gradtx.reduce_on_plateau(factor=0.5, patience=2, cooldown=1)
    params = {"w": jnp.ones(1)}
    state, scales = tx.init(params), []
    for v in [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5]:
        _, state = tx.update(params, state, params, value=jnp.float32(v))
        scales.append(float(state.scale))
    assert scales == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert float(state.best_value) == 0.5 and int(state.plateau_count) == 0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_reduce_on_plateau_under_scan_keeps_dtypes(dtype):
    tx = gradtx.chain(gradtx.sgd(0.1), gradtx.reduce_on_plateau(patience=2))
    values = plateau_values()[:20]
    grads = random_grads(2, shape=(3,), steps=20)
    params = {"w": jnp.ones(3, dtype)}
    state0 = tx.init(params)

    def body(state, xs):
        g, v = xs
        updates, new_state = tx.update({"w": g}, state, params, value=v)
        assert jax.tree.structure(new_state) == jax.tree.structure(state)
        assert updates["w"].dtype == dtype
        return new_state, updates["w"]

    xs = (jnp.asarray(np.stack(grads), dtype), jnp.asarray(values, jnp.float32))
    state, updates = jax.jit(lambda s: jax.lax.scan(body, s, xs))(state0)
    scales = reference.reduce_on_plateau_scales(values, patience=2)
    want = -0.1 * np.asarray(scales)[:, None] * np.stack(grads)
    tol = 1e-6 if dtype == jnp.float32 else 1e-2
    np.testing.assert_allclose(np.asarray(updates, np.float64), want, rtol=tol, atol=tol)
    assert [(x.shape, x.dtype) for x in jax.tree.leaves(state)] == [
        (x.shape, x.dtype) for x in jax.tree.leaves(state0)
    ]


def test_reduce_on_plateau_errors():
    tx = gradtx.reduce_on_plateau()
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError) as e:
        tx.update(params, tx.init(params), params)
    assert str(e.value) == (
        "reduce_on_plateau: this transformation needs the loss value. Call "
        "`update(updates, state, params, value=loss)` (through `chain` too)."
    )
    for kwargs, message in [
        ({"factor": 1.0}, "reduce_on_plateau: `factor` must be in (0, 1), got 1.0."),
        ({"patience": 0}, "reduce_on_plateau: `patience` must be an integer > 0, got 0."),
        (
            {"rtol": 0.0, "atol": 0.0},
            "reduce_on_plateau: `rtol` and `atol` cannot both be 0; make one of them positive.",
        ),
        ({"rtol": 2.0}, "reduce_on_plateau: `rtol` must be in [0, 1], got 2.0."),
    ]:
        with pytest.raises(ValueError) as e:
            gradtx.reduce_on_plateau(**kwargs)
        assert str(e.value) == message


@pytest.mark.parametrize("k", [1, 3])
def test_apply_every_matches_reference(k):
    grads = random_grads(3, shape=(4, 2), steps=12)
    tx = gradtx.apply_every(k)
    params = {"w": jnp.zeros((4, 2))}
    step = jax.jit(tx.update)
    state = tx.init(params)
    want = reference.apply_every(grads, k)
    for t, g in enumerate(grads):
        updates, state = step({"w": jnp.asarray(g, jnp.float32)}, state)
        np.testing.assert_allclose(updates["w"], want[t], rtol=1e-6, atol=1e-6, err_msg=f"{t}")
    assert int(state.count) == 12 % k


def test_conditionally_transform_runs_inner_only_when_told():
    # Momentum (trace 0.5) on steps 0, 1, 3, 4, ...; step 2, 5, ... pass the gradient through
    # and leave the momentum untouched.
    tx = gradtx.conditionally_transform(gradtx.trace(0.5), lambda step: step % 3 != 2)
    grads = random_grads(4, shape=(3,), steps=10)
    params = {"w": jnp.zeros(3)}
    step = jax.jit(tx.update)
    state, v = tx.init(params), np.zeros(3)
    for t, g in enumerate(grads):
        updates, state = step({"w": jnp.asarray(g, jnp.float32)}, state)
        if t % 3 != 2:
            v = 0.5 * v + g
            want = v
        else:
            want = g
        np.testing.assert_allclose(updates["w"], want, rtol=1e-6, err_msg=f"step {t}")
    assert int(state.step) == 10


def test_conditionally_transform_forwards_extra_args():
    # The condition reads the loss; the inner Polyak step reads it too.
    tx = gradtx.conditionally_transform(
        gradtx.polyak_sgd(), lambda step, value: value > 1.0, forward_extra_args=True
    )
    params = {"w": jnp.zeros(2)}
    g = {"w": jnp.array([3.0, 4.0])}
    state = tx.init(params)
    updates, state = tx.update(g, state, params, value=jnp.float32(5.0))
    np.testing.assert_allclose(updates["w"], [-0.6, -0.8], rtol=1e-6)  # 5 / 25 * g
    updates, state = tx.update(g, state, params, value=jnp.float32(0.5))
    np.testing.assert_allclose(updates["w"], [3.0, 4.0])  # passed through


def test_conditionally_transform_errors():
    with pytest.raises(TypeError) as e:
        gradtx.conditionally_transform(gradtx.sgd(0.1), 3)
    assert str(e.value) == (
        "conditionally_transform: `should_transform_fn` must be a function of the step count "
        "returning a bool, got 3."
    )
    tx = gradtx.conditionally_transform(gradtx.sgd(0.1), lambda step: step)
    params = {"w": jnp.ones(2)}
    with pytest.raises(TypeError) as e:
        tx.update(params, tx.init(params))
    assert str(e.value) == (
        "conditionally_transform: `should_transform_fn` must return a boolean scalar, got int32[]."
    )
