"""foreach / flatten: the packed fast path against the plain per-leaf path it must equal."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx import _foreach


def mixed_params():
    rng = np.random.default_rng(0)
    f32 = lambda *s: jnp.asarray(rng.standard_normal(s), jnp.float32)
    return {
        "big": f32(300, 300),  # above max_leaf_size below: passed through unpacked
        "layers": [{"w": f32(8, 4), "b": f32(4)} for _ in range(40)],  # > LEAVES_PER_BUFFER
        "scale": jnp.asarray(0.5, jnp.float32),
        "half": jnp.asarray(rng.standard_normal((5, 3)), jnp.bfloat16),
        "empty": jnp.zeros((0, 3), jnp.float32),
    }


def grads_like(params, seed):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)


def run(tx, steps=5):
    params = mixed_params()
    state = tx.init(params)

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    for i in range(steps):
        params, state = step(params, state, grads_like(params, i))
    return params, state


ELEMENTWISE = {
    "adamw": lambda: gradtx.adamw(1e-2, weight_decay=0.1),
    "lion": lambda: gradtx.lion(gradtx.cosine_decay_schedule(1e-3, 10)),
    "sgd_nesterov": lambda: gradtx.sgd(0.1, 0.9, nesterov=True),
    "adam_bf16_mu": lambda: gradtx.adam(1e-2, mu_dtype=jnp.bfloat16),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@pytest.mark.parametrize("max_leaf_size", [1000, None])
def test_elementwise_chains_are_bit_identical(name, max_leaf_size):
    plain, _ = run(ELEMENTWISE[name]())
    packed, _ = run(gradtx.foreach(ELEMENTWISE[name](), max_leaf_size=max_leaf_size))
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(packed), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a, np.float64), np.asarray(b, np.float64))


def test_clipped_chain_equals_plain_to_round_off():
    make = lambda: gradtx.chain(
        gradtx.clip_by_global_norm(1.0),
        gradtx.adamw(gradtx.warmup_cosine_decay_schedule(0.0, 1e-2, 2, 10), weight_decay=0.01),
    )
    plain, _ = run(make())
    packed, _ = run(gradtx.foreach(make(), max_leaf_size=1000))
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(packed), strict=True):
        tol = 1e-2 if a.dtype == jnp.bfloat16 else 1e-6
        np.testing.assert_allclose(
            np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=tol, atol=tol
        )


def test_state_is_packed_per_dtype_in_buffers():
    params = mixed_params()
    state = gradtx.foreach(gradtx.scale_by_adam(), max_leaf_size=1000).init(params)
    mu = state.mu
    assert isinstance(mu, gradtx.Packed)
    small_f32 = 40 * 2 + 2  # layers' w and b, `scale`, `empty`
    n_buffers = -(-small_f32 // _foreach.LEAVES_PER_BUFFER)
    assert sorted(mu.groups) == ["bfloat16_0"] + [f"float32_{k}" for k in range(n_buffers)]
    assert sum(v.size for k, v in mu.groups.items() if k.startswith("float32")) == (
        40 * (32 + 4) + 1
    )
    assert [x.shape for x in mu.leaves] == [(300, 300)]
    assert mu.groups["bfloat16_0"].dtype == jnp.bfloat16


def test_params_with_other_dtypes_than_updates_are_rejected():
    params = {"w": jnp.zeros(3, jnp.bfloat16)}
    tx = gradtx.foreach(gradtx.adamw(1e-3))
    state = tx.init({"w": jnp.zeros(3, jnp.float32)})
    with pytest.raises(TypeError) as info:
        tx.update({"w": jnp.zeros(3, jnp.float32)}, state, params)
    assert str(info.value) == (
        "foreach: the leaves of `params` packed with the float32 updates have dtypes "
        "['bfloat16']; give `params` the same dtype per leaf as the updates."
    )


def test_flatten_packs_every_leaf():
    params = mixed_params()
    state = gradtx.flatten(gradtx.scale_by_lion()).init(params)
    assert state.mu.leaves == ()


@pytest.mark.parametrize(
    ("name", "inner"),
    [
        ("add_decayed_weights", lambda: gradtx.adamw(1.0, mask=lambda p: {"w": True, "b": False})),
        ("masked", lambda: gradtx.masked(gradtx.adam(1.0), {"w": True, "b": False})),
        ("partition", lambda: gradtx.partition({"a": gradtx.adam(1.0)}, {"w": "a", "b": "a"})),
    ],
)
def test_masks_inside_foreach_raise_instead_of_silently_selecting_buffers(name, inner):
    # Regression: a mask function used to receive the packed buffers and select nothing.
    params = {"w": jnp.ones((4, 4)), "b": jnp.ones(4)}
    tx = gradtx.foreach(inner())
    with pytest.raises(TypeError) as info:
        tx.update(params, tx.init(params), params)
    assert str(info.value).startswith(
        f"{name}: inside `foreach` the parameters are packed into flat buffers, so a mask or "
        "labels cannot select leaves there."
    )
