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
    "adabelief": lambda: gradtx.adabelief(SCHEDULE, nesterov=True),
    "yogi": lambda: gradtx.yogi(1e-2),
    "adan": lambda: gradtx.adan(SCHEDULE, weight_decay=0.1),
    "sm3": lambda: gradtx.sm3(SCHEDULE),
    "sm3_no_momentum": lambda: gradtx.sm3(0.1, momentum=None),
    "adafactor": lambda: gradtx.adafactor(min_dim_size_to_factor=3, weight_decay_rate=1e-3),
    "adafactor_momentum": lambda: gradtx.adafactor(SCHEDULE, momentum=0.9, factored=False),
    "lamb": lambda: gradtx.lamb(SCHEDULE, weight_decay=0.1),
    "lars": lambda: gradtx.lars(0.1, weight_decay=1e-4, nesterov=True),
    "novograd": lambda: gradtx.novograd(1e-2, weight_decay=1e-3),
    "fromage": lambda: gradtx.fromage(SCHEDULE),
    "muon": lambda: gradtx.muon(SCHEDULE, weight_decay=0.1, adam_learning_rate=1e-3),
    "lbfgs_fixed_step": lambda: gradtx.lbfgs(0.1, memory_size=3, linesearch=None),
    "shampoo": lambda: gradtx.shampoo(SCHEDULE, preconditioning_compute_steps=2),
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
    "partition": lambda: gradtx.partition(
        {"adam": gradtx.adam(1e-2), "sgd": gradtx.sgd(0.1, momentum=0.9)},
        gradtx.labels_by_path(lambda path, p: "adam" if p.ndim > 1 else "sgd"),
    ),
    "masked": lambda: gradtx.masked(gradtx.adamw(SCHEDULE), {"dense": True, "stack": False}),
    "freeze": lambda: gradtx.chain(
        gradtx.adam(1e-2), gradtx.freeze({"dense": False, "stack": True})
    ),
    "multi_steps": lambda: gradtx.multi_steps(gradtx.adamw(SCHEDULE, weight_decay=0.1), 2),
    "apply_if_finite": lambda: gradtx.apply_if_finite(gradtx.adam(1e-2), 2),
    "zero_nans_sgd": lambda: gradtx.chain(gradtx.zero_nans(), gradtx.sgd(0.1)),
    "inject_adamw": lambda: gradtx.inject_hyperparams(gradtx.adamw)(SCHEDULE, weight_decay=0.01),
    "agc_sgd": lambda: gradtx.chain(gradtx.adaptive_grad_clip(0.1), gradtx.sgd(0.1)),
    "centralize_adam": lambda: gradtx.chain(gradtx.centralize(), gradtx.adam(1e-3)),
    "block_rms_sgd": lambda: gradtx.chain(gradtx.clip_by_block_rms(1.0), gradtx.sgd(0.1)),
    "normalize_sgd": lambda: gradtx.chain(gradtx.normalize_by_update_norm(), gradtx.sgd(0.1)),
    "noise_sgd": lambda: gradtx.chain(gradtx.add_noise(0.01, 0.55, 0), gradtx.sgd(0.1)),
    "ema": lambda: gradtx.ema(0.9),
    "adagrad": lambda: gradtx.adagrad(SCHEDULE),
    "rmsprop": lambda: gradtx.rmsprop(1e-2, eps_in_sqrt=True),
    "rmsprop_nesterov": lambda: gradtx.rmsprop(1e-2, centered=True, momentum=0.9, nesterov=True),
    "adadelta": lambda: gradtx.adadelta(weight_decay=1e-3),
    "adamax": lambda: gradtx.adamax(SCHEDULE),
    "amsgrad": lambda: gradtx.amsgrad(1e-2, mu_dtype=jnp.bfloat16),
    "amsgrad_torch_form": lambda: gradtx.amsgrad(SCHEDULE, correct_after_max=True),
    "nadam": lambda: gradtx.nadam(SCHEDULE),
    "nadamw": lambda: gradtx.nadamw(1e-2, weight_decay=0.1),
    "radam": lambda: gradtx.radam(SCHEDULE, b2=0.9, nesterov=True),
    "rprop": lambda: gradtx.rprop(1e-2),
    "sign_sgd": lambda: gradtx.sign_sgd(SCHEDULE),
    "signum": lambda: gradtx.signum(1e-2, accumulator_dtype=jnp.bfloat16),
    "noisy_sgd": lambda: gradtx.noisy_sgd(SCHEDULE, seed=1),
    "nested_wrappers": lambda: gradtx.partition(
        {
            "w": gradtx.masked(gradtx.multi_steps(gradtx.adam(1e-2), 2), True),
            "b": gradtx.lion(1e-3),
        },
        {"dense": "w", "stack": "b"},
    ),
    "prodigy": lambda: gradtx.prodigy(SCHEDULE, weight_decay=0.1),
    "dadapt_adamw": lambda: gradtx.dadapt_adamw(weight_decay=0.1),
    "dadapt_sgd": lambda: gradtx.dadapt_sgd(SCHEDULE, momentum=0.9),
    "schedule_free_sgd": lambda: gradtx.schedule_free_sgd(0.1, warmup_steps=2, weight_decay=0.1),
    "schedule_free_adamw": lambda: gradtx.schedule_free_adamw(1e-2, warmup_steps=2),
    "schedule_free_f32_z": lambda: gradtx.schedule_free(
        gradtx.adam(SCHEDULE, b1=0.0), SCHEDULE, state_dtype=jnp.float32
    ),
    "optimistic_gd": lambda: gradtx.optimistic_gradient_descent(SCHEDULE, alpha=0.5),
    "apply_every": lambda: gradtx.chain(gradtx.adam(1e-2), gradtx.apply_every(2)),
    "conditionally_transform": lambda: gradtx.conditionally_transform(
        gradtx.adam(1e-2), lambda step: step % 2 == 0
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
