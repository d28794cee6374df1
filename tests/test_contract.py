"""Invariants every optimizer in the registry must satisfy.

jit equals eager, bfloat16 stays bfloat16, state shapes and dtypes are stable across a step (so
`lax.scan` works), a second call does not retrace, `vmap` over a batch of models works, and
donating params and state to the jitted step works.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

SCHEDULE = gradtx.warmup_cosine_decay_schedule(0.0, 1e-2, 2, 10, 1e-4)

REGISTRY = {
    "sgd": lambda: gradtx.sgd(0.1),
    "sgd_momentum": lambda: gradtx.sgd(SCHEDULE, momentum=0.9),
    "sgd_nesterov": lambda: gradtx.sgd(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: gradtx.adam(1e-2),
    "adam_nesterov": lambda: gradtx.adam(SCHEDULE, nesterov=True),
    "adamw": lambda: gradtx.adamw(1e-2, weight_decay=0.1),
    "adamw_bf16_mu": lambda: gradtx.adamw(1e-2, mu_dtype=jnp.bfloat16),
    "lion": lambda: gradtx.lion(SCHEDULE),
    "clip_adamw_schedule": lambda: gradtx.chain(
        gradtx.clip_by_global_norm(1.0), gradtx.adamw(SCHEDULE, weight_decay=0.01)
    ),
    "clip_by_value_sgd": lambda: gradtx.chain(gradtx.clip(0.5), gradtx.sgd(jnp.float32(0.1))),
    "foreach_clip_adamw": lambda: gradtx.foreach(
        gradtx.chain(gradtx.clip_by_global_norm(1.0), gradtx.adamw(SCHEDULE)), max_leaf_size=4
    ),
    "named_chain": lambda: gradtx.named_chain(
        ("clip", gradtx.clip_by_global_norm(1.0)), ("opt", gradtx.lion(1e-3))
    ),
}


def make_params(dtype=jnp.float32):
    rng = np.random.default_rng(0)
    return {
        "dense": {"w": jnp.asarray(rng.standard_normal((4, 3)), dtype)},
        "stack": [jnp.asarray(rng.standard_normal(3), dtype), (jnp.asarray(0.5, dtype),)],
    }


def make_grads(params, seed):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)


def signature(tree):
    return jax.tree.structure(tree), [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]


def run(tx, params, steps, jit):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step
    state = tx.init(params)
    for i in range(steps):
        params, state = step(params, state, make_grads(params, i))
    return params, state


names = pytest.mark.parametrize("name", sorted(REGISTRY))


@names
def test_jit_equals_eager(name):
    tx = REGISTRY[name]()
    p_jit, s_jit = run(tx, make_params(), 4, jit=True)
    p_eager, s_eager = run(tx, make_params(), 4, jit=False)
    for a, b in zip(
        jax.tree.leaves((p_jit, s_jit)), jax.tree.leaves((p_eager, s_eager)), strict=True
    ):
        np.testing.assert_allclose(
            np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-6, atol=1e-7
        )


@names
def test_bf16_params_stay_bf16(name):
    tx = REGISTRY[name]()
    params = make_params(jnp.bfloat16)
    state0 = tx.init(params)
    new_params, state = run(tx, params, 3, jit=True)
    assert {x.dtype for x in jax.tree.leaves(new_params)} == {jnp.dtype(jnp.bfloat16)}
    assert signature(state) == signature(state0)
    updates, _ = tx.update(make_grads(params, 0), state0, params)
    assert {x.dtype for x in jax.tree.leaves(updates)} == {jnp.dtype(jnp.bfloat16)}


@names
def test_state_is_stable_under_scan(name):
    tx = REGISTRY[name]()
    params = make_params()
    state = tx.init(params)
    grads = jax.tree.map(lambda *g: jnp.stack(g), *[make_grads(params, i) for i in range(3)])

    def body(carry, g):
        params, state = carry
        updates, new_state = tx.update(g, state, params)
        assert signature(new_state) == signature(state)
        return (gradtx.apply_updates(params, updates), new_state), None

    (p_scan, s_scan), _ = jax.lax.scan(body, (params, state), grads)
    p_loop, s_loop = run(tx, params, 3, jit=True)
    for a, b in zip(
        jax.tree.leaves((p_scan, s_scan)), jax.tree.leaves((p_loop, s_loop)), strict=True
    ):
        np.testing.assert_allclose(
            np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-6, atol=1e-7
        )


@names
def test_no_retrace_and_donation(name):
    tx = REGISTRY[name]()
    traces = []

    def step(params, state, grads):
        traces.append(1)
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    step = jax.jit(step, donate_argnums=(0, 1))
    params = make_params()
    state = tx.init(params)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Some donated buffers were not usable"
        for i in range(3):
            params, state = step(params, state, make_grads(params, i))
    assert len(traces) == 1


@names
def test_vmap_over_models(name):
    tx = REGISTRY[name]()
    models = [make_params() for _ in range(3)]
    models = [jax.tree.map(lambda x, k=k: x * (k + 1), m) for k, m in enumerate(models)]
    grads = [make_grads(m, k) for k, m in enumerate(models)]
    stack = lambda trees: jax.tree.map(lambda *x: jnp.stack(x), *trees)

    def one(params, grads):
        updates, state = tx.update(grads, tx.init(params), params)
        return gradtx.apply_updates(params, updates), state

    batched = jax.vmap(one)(stack(models), stack(grads))
    for k in range(3):
        want = one(models[k], grads[k])
        got = jax.tree.map(lambda x, k=k: x[k], batched)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(
                np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-6, atol=1e-7
            )
